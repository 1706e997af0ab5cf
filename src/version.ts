import { readFileSync } from 'node:fs';

// The bundle (npm run build) has the version compiled in; from a checkout it is read from package.json, so
// `nodecred --version`, build_info metrics and the User-Agent agree either way.
declare const __NODECRED_VERSION__: string | undefined;

export const VERSION: string =
  typeof __NODECRED_VERSION__ === 'string'
    ? __NODECRED_VERSION__
    : (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
