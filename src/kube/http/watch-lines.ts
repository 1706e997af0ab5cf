// The framing of a watch response: the API server writes one JSON object per line ({"type": ..., "object":
// ...}, newline-terminated), in chunks that split lines and UTF-8 characters anywhere. Pure: bytes in,
// events out.
import { StringDecoder } from 'node:string_decoder';

export interface WatchEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: Record<string, unknown>;
}

const TYPES = new Set(['ADDED', 'MODIFIED', 'DELETED', 'BOOKMARK', 'ERROR']);

/** One object per line is bounded by the API server's request size limit (3 MiB); well above it is garbage. */
export const MAX_WATCH_LINE = 16 * 1024 * 1024;

export class WatchFramingError extends Error {
  override name = 'WatchFramingError';
}

export class WatchLineDecoder {
  private readonly decoder = new StringDecoder('utf8');
  private partial = '';

  /** The complete events in `chunk` (with what earlier chunks left over); throws on a malformed line. */
  push(chunk: Buffer | string): WatchEvent[] {
    const text = this.partial + (typeof chunk === 'string' ? chunk : this.decoder.write(chunk));
    const lines = text.split('\n');
    this.partial = lines.pop()!;
    if (this.partial.length > MAX_WATCH_LINE) {
      throw new WatchFramingError(`watch event longer than ${MAX_WATCH_LINE} bytes without a line end`);
    }
    return lines
      .map((l) => l.trim())
      .filter(Boolean)
      .map(parseEvent);
  }

  /** At the end of the stream: a last event without its newline still counts. */
  end(): WatchEvent[] {
    const rest = (this.partial + this.decoder.end()).trim();
    this.partial = '';
    return rest ? [parseEvent(rest)] : [];
  }
}

function parseEvent(line: string): WatchEvent {
  let o: unknown;
  try {
    o = JSON.parse(line);
  } catch {
    throw new WatchFramingError(`watch event is not JSON (${line.length} bytes)`);
  }
  const e = o as { type?: unknown; object?: unknown };
  if (typeof e?.type !== 'string' || !TYPES.has(e.type)) {
    throw new WatchFramingError(`watch event without a known type (${JSON.stringify(String(e?.type)).slice(0, 40)})`);
  }
  if (!e.object || typeof e.object !== 'object' || Array.isArray(e.object)) {
    throw new WatchFramingError(`watch event ${e.type} without an object`);
  }
  return { type: e.type as WatchEvent['type'], object: e.object as Record<string, unknown> };
}
