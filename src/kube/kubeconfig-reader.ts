// Reading a kubeconfig's YAML: the document, its named lists and typed fields, each problem a UserError that
// names the file and the field path (clusters[0].cluster.server) and never echoes a value (it may be secret).
// src/kube/kubeconfig.ts builds on these to parse clusters, users and contexts.

import path from 'node:path';
import type * as Yaml from 'yaml';
import { readBlockYaml } from '../yaml/block-reader.ts';
import { yamlLibrary } from '../yaml/yaml.ts';
import { quote, UserError } from '../errors.ts';

export type Obj = Record<string, unknown>;

export interface Ctx {
  file: string;
  dir: string;
}

const CODE = 'KUBECONFIG_INVALID';

export function fail(ctx: Ctx, at: string, message: string, fix: string, code = CODE): never {
  throw new UserError(message, { where: at ? `${ctx.file}: ${at}` : ctx.file, fix, code });
}

export function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'list';
  if (typeof v === 'object') return 'mapping';
  return typeof v;
}

export function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function own(obj: Obj, key: string): unknown {
  return Object.hasOwn(obj, key) ? obj[key] : undefined;
}

function join(at: string, key: string): string {
  return at ? `${at}.${key}` : key;
}

/** A string field; null and absent are both "not set". Never echoes the value (it may be a secret). */
export function optString(ctx: Ctx, obj: Obj, key: string, at: string): string | undefined {
  const v = own(obj, key);
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') {
    fail(ctx, join(at, key), `must be a string, got a ${typeName(v)}`, 'write the value as a quoted string');
  }
  return v;
}

export function optBool(ctx: Ctx, obj: Obj, key: string, at: string): boolean | undefined {
  const v = own(obj, key);
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') {
    fail(ctx, join(at, key), `must be true or false, got a ${typeName(v)}`, 'write true or false without quotes');
  }
  return v;
}

export function optObj(ctx: Ctx, obj: Obj, key: string, at: string): Obj | undefined {
  const v = own(obj, key);
  if (v === undefined || v === null) return undefined;
  if (!isObj(v))
    fail(ctx, join(at, key), `must be a mapping, got a ${typeName(v)}`, 'see `kubectl config view` for the layout');
  return v;
}

export function optList(ctx: Ctx, obj: Obj, key: string, at: string): unknown[] {
  const v = own(obj, key);
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v))
    fail(ctx, join(at, key), `must be a list, got a ${typeName(v)}`, 'see `kubectl config view` for the layout');
  return v;
}

export function resolvePath(ctx: Ctx, p: string): string {
  return path.resolve(ctx.dir, p);
}

export interface Named {
  name: string;
  index: number;
  body: Obj;
}

/** clusters / contexts / users: lists of {name, <bodyKey>: {...}}. Duplicate names are ambiguous: rejected. */
export function namedList(ctx: Ctx, root: Obj, listKey: string, bodyKey: string): Named[] {
  const out: Named[] = [];
  const seen = new Set<string>();
  optList(ctx, root, listKey, '').forEach((item, index) => {
    const at = `${listKey}[${index}]`;
    if (!isObj(item))
      fail(
        ctx,
        at,
        `must be a mapping with name and ${bodyKey}, got a ${typeName(item)}`,
        'see `kubectl config view` for the layout',
      );
    const name = optString(ctx, item, 'name', at);
    if (name === undefined) fail(ctx, `${at}.name`, 'is missing', `give every entry of ${listKey} a name`);
    if (seen.has(name))
      fail(
        ctx,
        `${at}.name`,
        `duplicate ${listKey} entry ${quote(name)}`,
        `remove or rename one of the ${listKey} entries named ${quote(name)}`,
      );
    seen.add(name);
    const body = optObj(ctx, item, bodyKey, at) ?? {};
    out.push({ name, index, body });
  });
  return out;
}

export function lookup(ctx: Ctx, list: Named[], name: string, at: string, kind: string, listKey: string): Named {
  const found = list.find((e) => e.name === name);
  if (!found) {
    const have = list.map((e) => `${quote(e.name)}`).join(', ') || 'none';
    fail(
      ctx,
      at,
      `${kind} ${quote(name)} is not defined in ${listKey} (defined: ${have})`,
      `add a ${kind} named ${quote(name)} to ${listKey} or point ${at} at an existing one`,
    );
  }
  return found;
}

export function loadRoot(text: string, ctx: Ctx): Obj {
  const root = readBlockYaml(text) ?? parseWithLibrary(text, ctx);
  if (root === null || root === undefined)
    fail(ctx, '', 'is empty', 'write a kubeconfig (apiVersion: v1, kind: Config, clusters, contexts, users)');
  if (!isObj(root))
    fail(
      ctx,
      '',
      `must be a YAML mapping, got a ${typeName(root)}`,
      'write a kubeconfig (apiVersion: v1, kind: Config, clusters, contexts, users)',
    );
  const kind = optString(ctx, root, 'kind', '');
  if (kind !== undefined && kind !== '' && kind !== 'Config') {
    fail(
      ctx,
      'kind',
      `is ${quote(kind)}, expected "Config"`,
      'point nodecred at a kubeconfig file, not another Kubernetes object',
    );
  }
  return root;
}

/** The documents the block reader leaves to the library; its errors name the line, never quote it. */
function parseWithLibrary(text: string, ctx: Ctx): unknown {
  const yamlFix = 'fix the YAML syntax (check indentation and quoting), or regenerate the file';
  let doc: ReturnType<typeof Yaml.parseDocument>;
  try {
    // prettyErrors would quote source lines, which may hold a token or key.
    doc = yamlLibrary().parseDocument(text, { prettyErrors: false, uniqueKeys: true, logLevel: 'error' });
  } catch (err) {
    fail(ctx, '', `is not valid YAML: ${err instanceof Error ? err.message : String(err)}`, yamlFix, 'KUBECONFIG_YAML');
  }
  const first = doc.errors[0];
  if (first) {
    fail(
      ctx,
      '',
      `is not valid YAML: ${first.message.split('\n')[0]} (line ${lineOf(text, first.pos[0])})`,
      yamlFix,
      'KUBECONFIG_YAML',
    );
  }
  try {
    return doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    fail(ctx, '', `is not valid YAML: ${err instanceof Error ? err.message : String(err)}`, yamlFix, 'KUBECONFIG_YAML');
  }
}

function lineOf(text: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset && i < text.length; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

const B64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** base64 → PEM text; never echoes the content. */
export function decodePemData(ctx: Ctx, b64: string, at: string, expect: 'certificate' | 'private key'): string {
  const compact = b64.replace(/\s+/g, '');
  const fix = `set ${at.split('.').pop()} to the base64 encoding of the PEM file (base64 -w0 < file.pem)`;
  if (compact === '') fail(ctx, at, 'is empty', fix);
  if (!B64.test(compact) || compact.length % 4 !== 0) fail(ctx, at, 'is not valid base64', fix);
  const pem = Buffer.from(compact, 'base64').toString('utf8');
  const ok =
    expect === 'certificate'
      ? pem.includes('-----BEGIN CERTIFICATE-----')
      : /-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem);
  if (!ok) fail(ctx, at, `does not decode to a PEM ${expect}`, fix);
  return pem;
}

export function makeCtx(file: string): Ctx {
  const abs = path.resolve(file);
  return { file: abs, dir: path.dirname(abs) };
}
