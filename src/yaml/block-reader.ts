// A reader for the block YAML that kubeconfigs and nodecred's config files are written in: mappings with
// plain keys, sequences (indented or not), single-line plain and quoted scalars, {} and [], comments. It
// returns exactly what the `yaml` library returns for such a document (YAML 1.2, core schema), or undefined
// for anything else, and the caller then parses with the library (src/yaml/yaml.ts). Why a second reader: the
// library costs every node ~1.4 MiB of idle RSS (bench P3) to read files that use none of YAML's other
// features. Differential tests hold it to the library (test/unit/yaml/block-yaml.test.ts).
// "Unsupported" is never an error here: anchors, tags, flow collections, block and multi-line scalars,
// directives, several documents, duplicate keys, tabs, numbers other than decimal integers — all go to the
// library, which also produces the error messages for invalid YAML.

type Obj = Record<string, unknown>;

/** Thrown inside the reader when the document leaves the subset; caught at the top, never escapes. */
class Unsupported extends Error {}

interface Line {
  indent: number;
  /** The text after the indentation, comments not yet stripped. */
  text: string;
}

/** The keys this reader takes, and the writer writes (isPlainKey). */
const KEY_NAME = '[A-Za-z_][A-Za-z0-9_./-]*';
const PLAIN_KEY = new RegExp(`^${KEY_NAME}$`);
/** An entry line: the key and what follows ': ', if anything. */
const KEY = new RegExp(`^(${KEY_NAME}):(?: +(.*))?$`);
const NULL = /^(?:~|[Nn]ull|NULL)?$/;
const BOOL = /^(?:[Tt]rue|TRUE|[Ff]alse|FALSE)$/;
const DECIMAL = /^[-+]?[0-9]+$/;
/** The core schema's other numbers (octal, hex, floats, inf, nan): left to the library. */
const OTHER_NUMBER = [
  /^0o[0-7]+$/,
  /^0x[0-9a-fA-F]+$/,
  /^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$/,
  /^(?:[-+]?\.(?:inf|Inf|INF)|\.nan|\.NaN|\.NAN)$/,
];
/** What may not start a plain scalar: YAML's indicators; '-', '?' and ':' only when a space or the end follows. */
const INDICATOR_START = /^(?:[,[\]{}#&*!|>'"%@`]|[-?:](?:\s|$))/;
/**
 * Control characters (YAML rejects or escapes them), tabs, lone CRs, DEL and C1 controls, line and paragraph
 * separators, BOMs and non-characters: the library decides about those. So it does about Unicode spaces other
 * than the space (no-break, em, ideographic, ...): JavaScript's trim and \s take them for whitespace, YAML
 * for content, so with them in a line this reader's trimming would read another value or another nesting.
 * The writer escapes the same characters (src/yaml/block-writer.ts).
 */
export function isOddCharacter(c: number): boolean {
  return (
    c < 0x20 ||
    (c >= 0x7f && c <= 0xa0) ||
    c === 0x1680 ||
    (c >= 0x2000 && c <= 0x200a) ||
    c === 0x2028 ||
    c === 0x2029 ||
    c === 0x202f ||
    c === 0x205f ||
    c === 0x3000 ||
    c === 0xfeff ||
    c >= 0xfffe
  );
}

function hasOddCharacter(line: string): boolean {
  for (let i = 0; i < line.length; i++) if (isOddCharacter(line.charCodeAt(i))) return true;
  return false;
}

const SIMPLE_ESCAPES: Record<string, string> = {
  '\\': '\\',
  '"': '"',
  '/': '/',
  n: '\n',
  t: '\t',
  r: '\r',
  b: '\b',
  f: '\f',
  '0': '\0',
};

/** The document's value if it is a mapping in the subset; undefined when the library must read it. */
export function readBlockYaml(text: string): Obj | undefined {
  try {
    const lines = splitLines(text);
    if (lines.length === 0 || KEY.exec(lines[0]!.text) === null || lines[0]!.indent !== 0) return undefined;
    const reader = new BlockReader(lines);
    const root = reader.mapping(0);
    return reader.done() ? root : undefined;
  } catch (err) {
    if (err instanceof Unsupported) return undefined;
    throw err;
  }
}

/** Content lines: blank and comment-only lines dropped, one leading "---" allowed, CRLF endings accepted. */
function splitLines(text: string): Line[] {
  const lines: Line[] = [];
  let sawContent = false;
  const raws = text.split('\n');
  for (const [i, raw] of raws.entries()) {
    // CRLF endings; a CR with no LF after it (the end of the text) is the library's to judge.
    const line = raw.endsWith('\r') && i < raws.length - 1 ? raw.slice(0, -1) : raw;
    if (hasOddCharacter(line)) throw new Unsupported();
    const body = line.trimStart();
    if (body === '' || body.startsWith('#')) continue;
    const indent = line.length - body.length;
    if (/^(?:---|\.\.\.)(?:\s|$)/.test(body) && indent === 0) {
      if (sawContent || body.startsWith('...') || stripComment(body.slice(3)) !== '') throw new Unsupported();
      sawContent = true;
      continue;
    }
    sawContent = true;
    lines.push({ indent, text: body.trimEnd() });
  }
  return lines;
}

/** The text before a comment (" #"), trimmed; for plain scalars and the rest of a line after a quoted one. */
function stripComment(text: string): string {
  const hash = text.search(/(?:^|\s)#/);
  return (hash === -1 ? text : text.slice(0, hash)).trim();
}

/**
 * Nesting deeper than any kubeconfig or config (they stay under ten levels) is the library's: it fails on
 * some hundreds of levels (its own stack), where this reader, recursing too, must neither read a value nor
 * overflow the stack (a RangeError is not "unsupported" and would escape to the kubeconfig reader).
 */
const MAX_DEPTH = 64;

class BlockReader {
  #at = 0;
  #depth = 0;
  readonly #lines: Line[];

  constructor(lines: Line[]) {
    this.#lines = lines;
  }

  done(): boolean {
    return this.#at === this.#lines.length;
  }

  #peek(): Line | undefined {
    return this.#lines[this.#at];
  }

  /** A mapping whose keys sit at `indent`; `first` is an entry already cut from a "- key: value" line. */
  mapping(indent: number, first?: string): Obj {
    return this.#nest(() => this.#mappingEntries(indent, first));
  }

  /** Runs a nested collection's reader, one level deeper. */
  #nest<T>(read: () => T): T {
    if (++this.#depth > MAX_DEPTH) throw new Unsupported();
    try {
      return read();
    } finally {
      this.#depth--;
    }
  }

  #mappingEntries(indent: number, first: string | undefined): Obj {
    const out: Obj = {};
    let entry = first;
    for (;;) {
      if (entry === undefined) {
        const line = this.#peek();
        if (line === undefined || line.indent < indent) return out;
        if (line.indent > indent) throw new Unsupported();
        entry = line.text;
      }
      this.#at++;
      const m = KEY.exec(entry);
      if (m === null) throw new Unsupported();
      const key = m[1]!;
      if (!isPlainKey(key) || Object.hasOwn(out, key)) throw new Unsupported();
      const rest = stripComment(m[2] ?? '');
      out[key] = rest === '' ? this.#nested(indent, true) : this.#inline(m[2]!, indent);
      entry = undefined;
    }
  }

  /** A sequence whose dashes sit at `indent`. */
  #sequence(indent: number): unknown[] {
    return this.#nest(() => this.#sequenceItems(indent));
  }

  #sequenceItems(indent: number): unknown[] {
    const out: unknown[] = [];
    for (;;) {
      const line = this.#peek();
      if (line === undefined || line.indent < indent) return out;
      if (line.indent > indent || !isDash(line.text)) {
        if (line.indent === indent) return out;
        throw new Unsupported();
      }
      const content = line.text.slice(1).trimStart();
      const column = indent + line.text.length - content.length;
      if (stripComment(content) === '') {
        this.#at++;
        out.push(this.#nested(indent, false));
      } else if (KEY.test(content)) {
        out.push(this.mapping(column, content));
      } else {
        this.#at++;
        out.push(this.#inline(content, indent));
      }
    }
  }

  /** The value below an entry with nothing after its ':' or '-': a deeper block, a same-level sequence, or null. */
  #nested(indent: number, inMapping: boolean): unknown {
    const next = this.#peek();
    if (next !== undefined && next.indent > indent) {
      return isDash(next.text) ? this.#sequence(next.indent) : this.mapping(next.indent);
    }
    // `key:` followed by "- item" at the key's own indentation: the layout kubectl writes.
    if (inMapping && next !== undefined && next.indent === indent && isDash(next.text)) return this.#sequence(indent);
    return null;
  }

  /** A value on the entry's own line; the next line must not continue it. */
  #inline(text: string, indent: number): unknown {
    const next = this.#peek();
    if (next !== undefined && next.indent > indent) throw new Unsupported();
    return inlineValue(text);
  }
}

/** A key both readers take for the same string, and safe as a property name; the writer writes only these. */
export function isPlainKey(key: string): boolean {
  return PLAIN_KEY.test(key) && key !== '__proto__' && scalar(key) === key;
}

function isDash(text: string): boolean {
  return text === '-' || text.startsWith('- ');
}

function inlineValue(text: string): unknown {
  if (text.startsWith("'")) return quoted(text, singleQuoted);
  if (text.startsWith('"')) return quoted(text, doubleQuoted);
  const plain = stripComment(text);
  if (plain === '{}') return {};
  if (plain === '[]') return [];
  if (INDICATOR_START.test(plain) || /: |:$/.test(plain)) throw new Unsupported();
  return scalar(plain);
}

/** A plain scalar resolved by the core schema, as the library does; numbers beyond decimal integers are not ours. */
function scalar(plain: string): unknown {
  if (NULL.test(plain)) return null;
  if (BOOL.test(plain)) return plain[0] === 't' || plain[0] === 'T';
  if (DECIMAL.test(plain)) return Number.parseInt(plain, 10);
  if (OTHER_NUMBER.some((re) => re.test(plain))) throw new Unsupported();
  return plain;
}

/** A quoted scalar that ends on its line, followed by nothing but a comment. */
function quoted(text: string, read: (text: string) => { value: string; end: number }): string {
  const { value, end } = read(text);
  const after = text.slice(end);
  if (after !== '' && !/^\s/.test(after)) throw new Unsupported();
  if (stripComment(after) !== '') throw new Unsupported();
  return value;
}

function singleQuoted(text: string): { value: string; end: number } {
  let value = '';
  for (let i = 1; i < text.length; i++) {
    if (text[i] !== "'") {
      value += text[i];
    } else if (text[i + 1] === "'") {
      value += "'";
      i++;
    } else return { value, end: i + 1 };
  }
  throw new Unsupported();
}

function doubleQuoted(text: string): { value: string; end: number } {
  let value = '';
  for (let i = 1; i < text.length; i++) {
    const c = text[i]!;
    if (c === '"') return { value, end: i + 1 };
    if (c !== '\\') {
      value += c;
      continue;
    }
    const e = text[++i] ?? '';
    if (e in SIMPLE_ESCAPES) value += SIMPLE_ESCAPES[e];
    else if (e === 'u' && /^[0-9a-fA-F]{4}$/.test(text.slice(i + 1, i + 5))) {
      value += String.fromCharCode(Number.parseInt(text.slice(i + 1, i + 5), 16));
      i += 4;
    } else throw new Unsupported();
  }
  throw new Unsupported();
}
