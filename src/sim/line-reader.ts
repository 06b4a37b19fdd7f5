/**
 * Newline-delimited JSON framing shared by the simulated hypervisors' Unix-socket protocols
 * (PowerVM hcalls, Xen xenstore/event channels): splits a stream into lines, bounded so that a
 * hostile peer cannot make the reader buffer without limit.
 */
export class LineReader {
  private buf = '';
  constructor(
    private readonly onLine: (line: string) => void,
    private readonly maxLine = 64 * 1024,
  ) {}

  /** Returns false when a line exceeds the bound, complete or not (the caller should drop the peer). */
  push(chunk: string): boolean {
    this.buf += chunk;
    for (;;) {
      const i = this.buf.indexOf('\n');
      if (i < 0) break;
      if (i > this.maxLine) return false;
      const line = this.buf.slice(0, i);
      this.buf = this.buf.slice(i + 1);
      if (line.length > 0) this.onLine(line);
    }
    return this.buf.length <= this.maxLine;
  }
}
