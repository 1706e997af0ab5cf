// The one parser for listen addresses (the daemon's --health-listen and --secure-listen, the approver's
// --metrics-listen), so every listener takes the same forms and a bad one gets the same clear line.
import { UserError } from '../errors.ts';

export interface ListenAddress {
  host: string;
  port: number;
}

/**
 * "127.0.0.1:10271", "[::1]:10271", "localhost:10271", or ":10271" for every IPv4 interface (only when written
 * so: the defaults are loopback). Port 0 picks a free port (the caller logs it). Surrounding blanks are ignored.
 */
export function parseListen(value: string, where: string): ListenAddress {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]*)):(\d{1,5})$/.exec(value.trim());
  const port = Number(m?.[3]);
  if (!m || !(port >= 0 && port <= 65535)) {
    throw new UserError(`"${value}" is not host:port`, {
      where,
      fix: 'e.g. 127.0.0.1:10271, [::1]:10271, or :10271 for every interface',
      code: 'USAGE',
    });
  }
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}
