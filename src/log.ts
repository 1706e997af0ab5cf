// Logging: JSON lines on stdout for journald, in pino's layout (level label, ISO time, bindings, fields, msg),
// written synchronously so the last lines survive a SIGABRT from the systemd watchdog. Not pino itself: its
// transport machinery (thread-stream, worker_threads, sonic-boom) loads on every node and is never used
// here (~0.7 MiB idle RSS, bench P3; README "Libraries"). Credentials never reach a log line: callers log
// paths, names and fingerprints, and redaction below is a second line of defence for fields that could
// carry secrets.
import { writeSync } from 'node:fs';
import type { LogLevel } from './config/log-level.ts';

/**
 * Field names whose values are replaced by "[redacted]", at any depth of a logged object, compared without
 * case, '-' or '_' (Authorization, client-key-data, token_secret).
 */
const REDACTED_KEYS = new Set([
  'token',
  'key',
  'keypem',
  'privatekey',
  'certpem',
  'certificatepem',
  'chainpem',
  'requestpem',
  'authorization',
  'tokensecret',
  'password',
  'clientkeydata',
]);
const isSecretName = (key: string) => REDACTED_KEYS.has(key.toLowerCase().replace(/[-_]/g, ''));
const CENSOR = '[redacted]';

type Fields = Record<string, unknown>;

const SEVERITY: Record<LogLevel, number> = { debug: 20, info: 30, warn: 40, error: 50 };

/** What the daemon, the approver and the tests log through. */
export interface Logger {
  /** Lines below it are not written; set it to change that from the next line on (SIGHUP reload). */
  level: LogLevel;
  /** A logger whose every line also carries these fields; it shares this one's level (a reload reaches it). */
  child(bindings: Fields): Logger;
  debug(fieldsOrMsg: Fields | string, msg?: string): void;
  info(fieldsOrMsg: Fields | string, msg?: string): void;
  warn(fieldsOrMsg: Fields | string, msg?: string): void;
  error(fieldsOrMsg: Fields | string, msg?: string): void;
}

export interface LogDestination {
  write(line: string): unknown;
}

/** What a field value becomes in JSON: secrets censored, bigints as decimal text, errors as type and message. */
function jsonValue(this: unknown, key: string, value: unknown): unknown {
  if (isSecretName(key) && value !== undefined && value !== null) return CENSOR;
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Error) return { type: value.name, message: value.message };
  return value;
}

function serialise(record: Fields): string {
  try {
    return JSON.stringify(record, jsonValue);
  } catch {
    // A cycle in the fields: the line still says what happened, without them.
    const { level, time, msg } = record;
    return JSON.stringify({ level, time, msg, logError: 'fields could not be serialised' });
  }
}

/**
 * stdout, synchronously. A full pipe (EAGAIN, when something made fd 1 non-blocking) is retried after a short
 * wait, at most a second; any other failure drops the line: the daemon never stops for a log line. A line
 * given up half written is ended by the next one's leading newline, or the next line would be glued to it.
 */
let cutShort = false;
const stdoutSync: LogDestination = {
  write(line: string) {
    let buf = Buffer.from(cutShort ? `\n${line}` : line);
    const deadline = performance.now() + 1000;
    while (buf.length > 0) {
      try {
        const written = writeSync(1, buf);
        if (written > 0) cutShort = written < buf.length;
        buf = buf.subarray(written);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EAGAIN' || performance.now() > deadline) return;
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
      }
    }
  },
};

class JsonLogger implements Logger {
  /** One per root logger, shared with its children. */
  readonly #setting: { level: LogLevel };
  readonly #bindings: Fields;
  readonly #destination: LogDestination;

  constructor(setting: { level: LogLevel }, bindings: Fields, destination: LogDestination) {
    this.#setting = setting;
    this.#bindings = bindings;
    this.#destination = destination;
  }

  get level(): LogLevel {
    return this.#setting.level;
  }

  set level(level: LogLevel) {
    this.#setting.level = level;
  }

  child(bindings: Fields): Logger {
    return new JsonLogger(this.#setting, { ...this.#bindings, ...bindings }, this.#destination);
  }

  debug(fieldsOrMsg: Fields | string, msg?: string): void {
    this.#write('debug', fieldsOrMsg, msg);
  }

  info(fieldsOrMsg: Fields | string, msg?: string): void {
    this.#write('info', fieldsOrMsg, msg);
  }

  warn(fieldsOrMsg: Fields | string, msg?: string): void {
    this.#write('warn', fieldsOrMsg, msg);
  }

  error(fieldsOrMsg: Fields | string, msg?: string): void {
    this.#write('error', fieldsOrMsg, msg);
  }

  #write(level: LogLevel, fieldsOrMsg: Fields | string, msg: string | undefined): void {
    if (SEVERITY[level] < SEVERITY[this.#setting.level]) return;
    const fields = typeof fieldsOrMsg === 'string' ? {} : fieldsOrMsg;
    const text = typeof fieldsOrMsg === 'string' ? fieldsOrMsg : msg;
    const line = serialise({ level, time: new Date().toISOString(), ...this.#bindings, ...fields, msg: text });
    this.#destination.write(`${line}\n`);
  }
}

export function createLogger(level: LogLevel, destination: LogDestination = stdoutSync): Logger {
  return new JsonLogger({ level }, { component: 'nodecred' }, destination);
}

/** For the simulator, benchmarks and tests that assert on behaviour, not on lines: writes nothing. */
export function silentLogger(): Logger {
  return createLogger('error', { write: () => undefined });
}
