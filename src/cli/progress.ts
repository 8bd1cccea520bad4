/**
 * Progress display for long commands (build, extract): a bar on stderr when
 * stderr is a terminal, nothing at all otherwise (logs and pipes get only
 * the final lines). Plus the byte formatting the summaries share.
 */
import cliProgress from "cli-progress";

export interface Progress {
  /** `done` of `total` bytes; `label` is shown after the numbers. */
  update(done: number, total: number, label?: string): void;
  /** Remove the bar (before the final lines are printed). */
  stop(): void;
}

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];

export function formatBytes(n: number): string {
  let v = n;
  let u = 0;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)} ${UNITS[u]}`;
}

export function progressBar(title: string, stream: NodeJS.WriteStream = process.stderr): Progress {
  if (!stream.isTTY) return { update() {}, stop() {} };
  const bar = new cliProgress.SingleBar(
    {
      stream,
      format: `${title} [{bar}] {percentage}% | {done} / {all} | {speed} | {label}`,
      hideCursor: true,
      clearOnComplete: true,
      barsize: 30,
      fps: 8,
    },
    cliProgress.Presets.shades_classic,
  );
  const start = performance.now();
  let started = false;
  const payload = (done: number, total: number, label: string) => {
    const secs = (performance.now() - start) / 1000;
    return { done: formatBytes(done), all: formatBytes(total), speed: secs > 0.2 ? `${formatBytes(done / secs)}/s` : "…", label };
  };
  return {
    update(done, total, label = "") {
      if (!started) {
        bar.start(Math.max(total, 1), done, payload(done, total, label));
        started = true;
        return;
      }
      bar.setTotal(Math.max(total, 1));
      bar.update(done, payload(done, total, label));
    },
    stop() {
      if (started) bar.stop();
      started = false;
    },
  };
}
