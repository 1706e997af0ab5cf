// Writing block YAML in the layout kubectl and the kubelet write kubeconfigs: two-space mappings, sequence
// dashes at their key's indentation, no folding. Strings are plain when they read back as the same string,
// double-quoted otherwise. The output stays inside what src/yaml/block-reader.ts reads, so nodecred reads its
// own files without the `yaml` library; tests hold it to the library and to kubectl.

import { isOddCharacter, isPlainKey } from './block-reader.ts';

type Obj = Record<string, unknown>;

/**
 * Plain only when unambiguous: a safe first character (or one or two dashes and a letter: command-line flags,
 * as kubectl writes them), no spaces, no ': ' or ' #', not a YAML null/bool/number.
 */
const PLAIN = /^(?:[A-Za-z0-9_./]|--?[A-Za-z])[A-Za-z0-9_./:@=+,~-]*$/;
const NOT_A_STRING = /^(?:~|[Nn]ull|NULL|[Tt]rue|TRUE|[Ff]alse|FALSE|[-+]?[0-9.].*|\.(?:inf|Inf|INF|nan|NaN|NAN))$/;
/**
 * Strings only to YAML 1.2, booleans to YAML 1.1, which Go's reader (sigs.k8s.io/yaml: kubectl, the kubelet)
 * speaks: written plain, a kubeconfig's string field (an exec argument, an env value, a name) fails to load.
 */
const YAML11_BOOLEAN = /^(?:[yY]|[yY]es|YES|[nN]|[nN]o|NO|[oO]n|ON|[oO]ff|OFF)$/;

export function writeBlockYaml(doc: Obj): string {
  return `${mappingLines(doc, 0).join('\n')}\n`;
}

function mappingLines(map: Obj, indent: number): string[] {
  const pad = ' '.repeat(indent);
  const lines: string[] = [];
  for (const [key, value] of Object.entries(map)) {
    if (value === undefined) continue;
    if (!isPlainKey(key)) throw new Error(`writeBlockYaml: key ${JSON.stringify(key)}`);
    if (isBlock(value)) {
      lines.push(`${pad}${key}:`);
      // Sequence dashes at the key's own indentation, mappings two deeper: kubectl's layout.
      lines.push(...(Array.isArray(value) ? sequenceLines(value, indent) : mappingLines(value as Obj, indent + 2)));
    } else lines.push(`${pad}${key}: ${inline(value)}`);
  }
  return lines;
}

function sequenceLines(items: unknown[], indent: number): string[] {
  const pad = ' '.repeat(indent);
  const lines: string[] = [];
  for (const item of items) {
    if (Array.isArray(item) && item.length > 0) throw new Error('writeBlockYaml: a sequence in a sequence');
    if (!isBlock(item)) {
      lines.push(`${pad}- ${inline(item)}`);
      continue;
    }
    // "- first: entry" then the rest of the mapping under it.
    const [first, ...rest] = mappingLines(item as Obj, indent + 2);
    lines.push(`${pad}- ${first!.slice(indent + 2)}`, ...rest);
  }
  return lines;
}

/** A non-empty mapping or sequence: written as a block below its key. */
function isBlock(value: unknown): boolean {
  if (Array.isArray(value)) return value.length > 0;
  return typeof value === 'object' && value !== null && Object.keys(value).length > 0;
}

function inline(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return '[]';
  if (typeof value === 'object') return '{}';
  if (typeof value === 'boolean') return String(value);
  if (typeof value === 'number' && Number.isSafeInteger(value)) return String(value);
  if (typeof value !== 'string') throw new Error(`writeBlockYaml: a ${typeof value} value`);
  if (PLAIN.test(value) && !NOT_A_STRING.test(value) && !YAML11_BOOLEAN.test(value) && !value.endsWith(':')) {
    return value;
  }
  return doubleQuoted(value);
}

/**
 * JSON's escapes are YAML's too; what JSON leaves raw but the block reader leaves to the library (DEL, C1
 * controls, Unicode spaces, line and paragraph separators, BOMs, non-characters) is escaped as well.
 */
function doubleQuoted(value: string): string {
  let out = '';
  for (const c of JSON.stringify(value)) {
    const code = c.charCodeAt(0);
    out += isOddCharacter(code) ? `\\u${code.toString(16).padStart(4, '0')}` : c;
  }
  return out;
}
