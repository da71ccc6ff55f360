/**
 * A one-line progress bar for stderr on a terminal: files done/total, bytes read, rate, ETA
 * and the file being worked on. Redraws at most ten times a second; `clear()` erases it so
 * other output can be printed, `finish()` erases it for good.
 */
import { formatBytes } from './io';

export class ProgressBar {
  private done = 0;
  private bytes = 0;
  private current = '';
  private lastDraw = 0;
  private readonly start: number;
  private finished = false;

  constructor(
    private readonly write: (s: string) => void,
    private total: number,
    private readonly columns = 80,
    private readonly now: () => number = () => Date.now(),
  ) {
    this.start = now();
  }

  /** A file started. */
  started(total: number, input: string): void {
    this.total = total;
    this.current = input;
    this.draw(false);
  }

  /** A file finished; `bytesIn` is what was read for it. */
  finishedFile(total: number, done: number, bytesIn: number): void {
    this.total = total;
    this.done = Math.max(this.done, done);
    this.bytes += bytesIn;
    this.draw(this.done === this.total);
  }

  /** The current line's text (for tests). */
  line(): string {
    const elapsed = Math.max((this.now() - this.start) / 1000, 1e-3);
    const frac = this.total > 0 ? this.done / this.total : 0;
    const width = 20;
    const filled = Math.round(frac * width);
    const bar = '='.repeat(Math.max(filled - 1, 0)) + (filled > 0 ? (filled === width ? '=' : '>') : '') + ' '.repeat(width - filled);
    const rate = this.bytes / elapsed;
    const eta = this.done > 0 && this.done < this.total ? ((this.total - this.done) * elapsed) / this.done : null;
    let s = `[${bar}] ${this.done}/${this.total} files  ${formatBytes(this.bytes)}  ${formatBytes(Math.round(rate))}/s`;
    if (eta !== null) s += `  ETA ${clock(eta)}`;
    const room = this.columns - s.length - 3;
    if (this.current && this.done < this.total && room > 8) {
      const name = this.current.length > room ? '…' + this.current.slice(this.current.length - room + 1) : this.current;
      s += `  ${name}`;
    }
    return s.slice(0, Math.max(this.columns - 1, 10));
  }

  private draw(force: boolean): void {
    if (this.finished) return;
    const t = this.now();
    if (!force && t - this.lastDraw < 100) return;
    this.lastDraw = t;
    this.write(`\r\x1b[K${this.line()}`);
  }

  /** Erases the bar (it is redrawn by the next event). */
  clear(): void {
    if (!this.finished) this.write('\r\x1b[K');
  }

  /** Erases the bar; later events draw nothing. */
  finish(): void {
    this.clear();
    this.finished = true;
  }
}

function clock(seconds: number): string {
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`;
}
