import { readFileSync } from 'node:fs';

// Read once from package.json so `nodecred --version`, build_info metrics and the User-Agent agree.
const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
export const VERSION: string = pkg.version;
