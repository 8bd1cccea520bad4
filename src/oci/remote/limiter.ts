/**
 * Bounded concurrency towards one registry, with two lanes: reads that a
 * client is waiting for ("high") and background prefetch ("low"). Low work
 * only starts when no high work waits, and never holds more than `maxLow`
 * of the slots, so a prefetch delays a foreground read by at most the time
 * one slot takes to free up.
 *
 * A `Lane` object instead of a string lets a queued low request be promoted
 * (`lane.high = true`) when a foreground read starts waiting for the same
 * blob, so it never waits behind the prefetch queue.
 */
export interface Lane {
  high: boolean;
}
export type Priority = "high" | "low" | Lane;

interface Waiter {
  lane: Lane;
  grant: () => void;
}

export function laneOf(p: Priority): Lane {
  return typeof p === "string" ? { high: p === "high" } : p;
}

export class Limiter {
  private active = 0;
  private activeLow = 0;
  private readonly queue: Waiter[] = [];
  readonly maxLow: number;

  constructor(
    readonly max: number,
    maxLow?: number,
  ) {
    if (!Number.isSafeInteger(max) || max < 1) throw new RangeError(`Limiter: max must be a positive integer, got ${max}`);
    this.maxLow = Math.max(1, Math.min(max, maxLow ?? Math.ceil(max / 4)));
  }

  get running(): number {
    return this.active;
  }

  get waiting(): number {
    return this.queue.length;
  }

  /** Resolves with a release function once a slot is free; call it once (more calls are ignored). */
  acquire(priority: Priority = "high"): Promise<() => void> {
    const lane = laneOf(priority);
    return new Promise((resolve) => {
      const grant = () => {
        const low = !lane.high;
        this.active++;
        if (low) this.activeLow++;
        let released = false;
        resolve(() => {
          if (released) return;
          released = true;
          this.active--;
          if (low) this.activeLow--;
          this.pump();
        });
      };
      this.queue.push({ lane, grant });
      this.pump();
    });
  }

  /** Run `fn` holding a slot. */
  async run<T>(fn: () => Promise<T>, priority: Priority = "high"): Promise<T> {
    const release = await this.acquire(priority);
    try {
      return await fn();
    } finally {
      release();
    }
  }

  /** Re-check the queue (after a lane was promoted). */
  pump(): void {
    while (this.active < this.max && this.queue.length) {
      let i = this.queue.findIndex((w) => w.lane.high);
      if (i < 0 && this.activeLow < this.maxLow) i = 0;
      if (i < 0) return;
      this.queue.splice(i, 1)[0]!.grant();
    }
  }
}
