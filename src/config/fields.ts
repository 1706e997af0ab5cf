// Reading untrusted config values: FieldReader walks a parsed YAML document naming `<file>: <path>` in every
// error, and the validators check single values (node name, addresses, API server, token, durations) the
// same way whether they come from a config file or a flag.
import { UserError } from '../errors.ts';
import { BOOTSTRAP_TOKEN_RE } from '../kube/discovery.ts';
import type { NodeAddress } from '../manager/policy.ts';
import { canonicalIp, isDnsSanName } from '../pki/san.ts';
import { parseDuration } from './duration.ts';

type Raw = Record<string, unknown>;

/** Reads typed values out of an untrusted object, naming `<source>: <path>` in every error. */
export class FieldReader {
  readonly source: string;
  readonly path: string;

  constructor(source: string, path = '') {
    this.source = source;
    this.path = path;
  }

  where(field: string): string {
    const p = this.path ? `${this.path}.${field}` : field;
    return `${this.source}: ${p}`;
  }

  fail(field: string, message: string, fix: string): never {
    throw new UserError(message, { where: this.where(field), fix, code: 'CONFIG_INVALID' });
  }

  object(value: unknown, field: string): Raw {
    if (value === null || typeof value !== 'object' || Array.isArray(value))
      this.fail(field, `must be a mapping, got ${describeValue(value)}`, 'write key: value pairs');
    return value as Raw;
  }

  rejectUnknown(obj: Raw, known: readonly string[]): void {
    for (const key of Object.keys(obj)) {
      if (!known.includes(key)) this.fail(key, 'unknown field', `remove it; known fields here: ${known.join(', ')}`);
    }
  }

  string(value: unknown, field: string): string {
    if (typeof value !== 'string' || value.trim() === '')
      this.fail(field, `must be a non-empty string, got ${describeValue(value)}`, 'quote the value if needed');
    return value;
  }

  boolean(value: unknown, field: string): boolean {
    if (typeof value !== 'boolean')
      this.fail(field, `must be true or false, got ${describeValue(value)}`, 'write true or false without quotes');
    return value;
  }

  fraction(value: unknown, field: string): number {
    if (typeof value !== 'number' || !(value > 0 && value < 1))
      this.fail(field, `must be a number between 0 and 1 (exclusive), got ${describeValue(value)}`, 'e.g. 0.7');
    return value;
  }

  duration(value: unknown, field: string): number {
    return parseDuration(this.string(value, field), this.where(field));
  }

  stringList(value: unknown, field: string): string[] {
    if (!Array.isArray(value)) this.fail(field, `must be a list, got ${describeValue(value)}`, 'write a YAML list');
    return value.map((v, i) => this.string(v, `${field}[${i}]`));
  }

  nested(field: string): FieldReader {
    return new FieldReader(this.source, this.path ? `${this.path}.${field}` : field);
  }
}

export function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'string') return `"${value.length > 40 ? `${value.slice(0, 40)}…` : value}"`;
  return typeof value === 'object' ? 'a mapping' : `${typeof value} ${String(value)}`;
}

const NODE_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export function validateNodeName(name: string, where: string): string {
  if (name.length > 253 || !NODE_NAME.test(name)) {
    throw new UserError(`node name "${name}" is not a valid DNS subdomain`, {
      where,
      fix: 'use lower-case letters, digits, "-" and "." (max 253 characters)',
      code: 'CONFIG_INVALID',
    });
  }
  return name;
}

const ADDRESS_TYPES = ['Hostname', 'InternalIP', 'ExternalIP', 'InternalDNS', 'ExternalDNS'] as const;

/** `where` names the address, `typeWhere` the type (they differ in a file: `...addresses[0].type`). */
export function validateAddress(type: string, address: string, where: string, typeWhere = where): NodeAddress {
  if (!(ADDRESS_TYPES as readonly string[]).includes(type)) {
    throw new UserError(`unknown address type "${type}"`, {
      where: typeWhere,
      fix: `use one of ${ADDRESS_TYPES.join(', ')}`,
      code: 'CONFIG_INVALID',
    });
  }
  if (type.endsWith('IP') && canonicalIp(address) === undefined) {
    throw new UserError(`"${address}" is not an IP address`, {
      where,
      fix: 'write a plain IPv4 or IPv6 address',
      code: 'CONFIG_INVALID',
    });
  }
  // A name the CSR builder would refuse must fail here, naming the field, not later at request time.
  if (!type.endsWith('IP') && canonicalIp(address) === undefined && !isDnsSanName(address)) {
    throw new UserError(`"${address}" is not a valid DNS name`, {
      where,
      fix: 'use letters, digits, "-" and "." (or an IP address for Hostname)',
      code: 'CONFIG_INVALID',
    });
  }
  return { type, address };
}

export function validateDiscoveryToken(token: string, where: string): string {
  if (!BOOTSTRAP_TOKEN_RE.test(token)) {
    throw new UserError('discovery token must look like abcdef.0123456789abcdef', {
      where,
      fix: 'pass the token printed by create-bootstrap-token or kubeadm token create',
      code: 'CONFIG_INVALID',
    });
  }
  return token;
}

export function validateApiServer(url: string, where: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url.includes('://') ? url : `https://${url}`);
  } catch {
    throw new UserError(`"${url}" is not a URL`, { where, fix: 'e.g. https://10.0.0.1:6443', code: 'CONFIG_INVALID' });
  }
  if (parsed.protocol !== 'https:') {
    throw new UserError(`the API server must be reached over https, got ${parsed.protocol}`, {
      where,
      fix: 'use an https:// URL',
      code: 'CONFIG_INVALID',
    });
  }
  return parsed.origin;
}

const MIN_REQUESTED_LIFETIME_MS = 600 * 1000;
const MAX_REQUESTED_LIFETIME_MS = (2 ** 31 - 1) * 1000;

/** spec.expirationSeconds: the API server rejects less than 600, and it is an int32. */
export function validateRequestedLifetime(ms: number, where: string): number {
  if (ms < MIN_REQUESTED_LIFETIME_MS || ms > MAX_REQUESTED_LIFETIME_MS) {
    throw new UserError(
      `requested lifetime must be between 10m and ${Math.floor(MAX_REQUESTED_LIFETIME_MS / 3_600_000)}h ` +
        `(spec.expirationSeconds limits)`,
      {
        where,
        fix: 'e.g. 8760h, or leave it out to let the signer decide',
        code: 'CONFIG_INVALID',
      },
    );
  }
  return ms;
}

export function validateTimeout(ms: number, where: string): number {
  if (ms <= 0) throw new UserError('timeout must be longer than 0', { where, fix: 'e.g. 15m', code: 'CONFIG_INVALID' });
  return ms;
}
