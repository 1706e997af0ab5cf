// Library exceptions become the "because ..." part of our UserErrors. Their messages come from OpenSSL or
// our DER reader and describe structure ("DECODER routines::unsupported", "certificate: truncated element"),
// but we still flatten and cap them: a UserError is printed as one line and must never carry input bytes.

const MAX_LENGTH = 160;

export function libraryErrorMessage(error: unknown): string {
  const raw = error instanceof Error ? error.message : String(error);
  const oneLine = raw.replace(/\s+/g, ' ').trim();
  if (oneLine.length === 0) return 'unknown error';
  return oneLine.length > MAX_LENGTH ? `${oneLine.slice(0, MAX_LENGTH)}…` : oneLine;
}
