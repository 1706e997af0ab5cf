// Reading a YAML config file (node or approver), the one way: unreadable files and YAML syntax errors
// become UserErrors naming the file; odd input never prints YAML warnings (they quote the source) to logs.
import { readFile } from 'node:fs/promises';
import { readBlockYaml } from '../yaml/block-reader.ts';
import { yamlLibrary } from '../yaml/yaml.ts';
import { UserError, errnoError } from '../errors.ts';

export function parseYamlDocument(text: string, path: string): unknown {
  try {
    return readBlockYaml(text) ?? yamlLibrary().parse(text, { logLevel: 'error', prettyErrors: false });
  } catch (err) {
    const pos = (err as { linePos?: Array<{ line: number }> }).linePos?.[0]?.line;
    throw new UserError(`not valid YAML${pos ? ` (line ${pos})` : ''}`, {
      where: path,
      fix: 'fix the YAML syntax',
      code: 'CONFIG_INVALID',
    });
  }
}

export async function readYamlFile(path: string, flag = '--config'): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const known = errnoError(err, { action: 'read config', path });
    throw new UserError(`cannot read config: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, {
      where: path,
      fix: `${known ? `${known.fix}; ` : ''}check ${flag}`,
      code: 'USAGE',
    });
  }
  return parseYamlDocument(text, path);
}
