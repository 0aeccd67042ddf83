/** One status line on stderr while a long run goes on (only when stderr is a terminal). */
import type { SearchProgress } from '../agent/searcher.ts';

export interface ProgressLine {
  update(text: string): void;
  done(): void;
}

export function progressLine(): ProgressLine {
  const tty = process.stderr.isTTY;
  let last = 0;
  return {
    update(text) {
      const now = Date.now();
      if (!tty || now - last < 100) return;
      last = now;
      process.stderr.write(`\r\x1b[K${text}`);
    },
    done() {
      if (tty) process.stderr.write('\r\x1b[K');
    },
  };
}

export function describeProgress(p: SearchProgress): string {
  return `${p.searcher} ${p.problem}: ${p.measurements} measured, best ${p.bestGflops.toFixed(1)} GFLOPS (default ${p.defaultGflops.toFixed(1)}), ${p.seconds.toFixed(1)} s, ${(100 * p.fraction).toFixed(0)}% of budget`;
}
