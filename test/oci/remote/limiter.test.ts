import { describe, expect, it } from "vitest";
import { Limiter } from "../../../src/oci/remote/limiter.ts";

const tick = () => new Promise((r) => setImmediate(r));

describe("oci/remote/limiter", () => {
  it("never runs more than max at once", async () => {
    const l = new Limiter(3);
    let now = 0;
    let peak = 0;
    const gates: Array<() => void> = [];
    const jobs = Array.from({ length: 10 }, () =>
      l.run(async () => {
        peak = Math.max(peak, ++now);
        await new Promise<void>((r) => gates.push(r));
        now--;
      }),
    );
    while (gates.length || l.waiting || l.running) {
      await tick();
      gates.shift()?.();
    }
    await Promise.all(jobs);
    expect(peak).toBe(3);
  });

  it("grants waiting high work before low work, and caps low work at maxLow slots", async () => {
    const l = new Limiter(2, 1);
    const order: string[] = [];
    const r1 = await l.acquire("high");
    const r2 = await l.acquire("high");
    const lows = [l.acquire("low").then((r) => (order.push("low1"), r)), l.acquire("low").then((r) => (order.push("low2"), r))];
    const high = l.acquire("high").then((r) => (order.push("high"), r));
    r1();
    await tick();
    expect(order).toEqual(["high"]);
    r2();
    await tick();
    expect(order).toEqual(["high", "low1"]);
    (await high)();
    await tick();
    // One slot is free, but low work may hold only one: low2 still waits.
    expect(order).toEqual(["high", "low1"]);
    expect(l.running).toBe(1);
    (await lows[0]!)();
    await tick();
    expect(order).toEqual(["high", "low1", "low2"]);
    (await lows[1]!)();
    expect(l.running).toBe(0);
  });

  it("a queued low request promoted to high overtakes the low queue", async () => {
    const l = new Limiter(1, 1);
    const order: string[] = [];
    const r = await l.acquire("high");
    const lane = { high: false };
    const a = l.acquire("low").then((x) => (order.push("a"), x));
    const b = l.acquire(lane).then((x) => (order.push("b"), x));
    lane.high = true;
    r();
    await tick();
    expect(order).toEqual(["b"]);
    (await b)();
    await tick();
    expect(order).toEqual(["b", "a"]);
    (await a)();
  });

  it("a release function works once", async () => {
    const l = new Limiter(1);
    const r = await l.acquire();
    r();
    r();
    expect(l.running).toBe(0);
    expect(() => new Limiter(0)).toThrow(RangeError);
  });
});
