// The `yaml` library, for the documents src/yaml/block-reader.ts leaves to it (anchors, flow collections,
// block scalars, invalid YAML and its error messages, ...). Loaded on first use, and through require: an ES
// import of this CommonJS package goes through Node's ES-to-CommonJS wrapper, which holds more (bench P3).
import { createRequire } from 'node:module';
import type * as Yaml from 'yaml';

// Defined only in the bundles (scripts/lib/bundle.ts), as in src/version.ts: there esbuild keeps the literal
// require('yaml') — the library bundled, run on first call — and drops the import.meta branch, which a
// single executable (CommonJS) cannot use.
declare const __NODECRED_VERSION__: string | undefined;

let loaded: typeof Yaml | undefined;

export function yamlLibrary(): typeof Yaml {
  loaded ??= (
    typeof __NODECRED_VERSION__ === 'string' ? require('yaml') : createRequire(import.meta.url)('yaml')
  ) as typeof Yaml;
  return loaded;
}
