// Logging: pino JSON lines on stdout for journald, written synchronously so the last lines survive a
// SIGABRT from the systemd watchdog. Credentials never reach a log line: callers log paths, names and
// fingerprints, and redaction below is a second line of defence for fields that could carry secrets.
import pino, { type Logger } from 'pino';

export type { Logger };

const REDACTED_PATHS = [
  'token',
  '*.token',
  'key',
  '*.key',
  'keyPem',
  '*.keyPem',
  'privateKey',
  '*.privateKey',
  'certPem',
  '*.certPem',
  'certificatePem',
  '*.certificatePem',
  'chainPem',
  '*.chainPem',
  'requestPem',
  '*.requestPem',
  'authorization',
  '*.authorization',
  'headers.authorization',
  'tokenSecret',
  '*.tokenSecret',
];

export function createLogger(
  level: string,
  destination: pino.DestinationStream = pino.destination({ fd: 1, sync: true }),
): Logger {
  return pino(
    {
      level,
      base: { component: 'nodecred' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}
