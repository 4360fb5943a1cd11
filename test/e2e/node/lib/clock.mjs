// A fake clock for running backtest-kit's live mode offline, fast and repeatably.
//
// Date.now() and `new Date()` return a virtual time that only the driver moves,
// and timers of a second or more are shortened 1000x so backtest-kit's 5-second
// minute-boundary poll reacts within milliseconds. The driver moves the clock to
// the next minute only after the previous minute's tick has finished, so every
// minute is ticked exactly once whatever the persistence latency.
const RealDate = Date;
const realSetTimeout = globalThis.setTimeout;
const realSetInterval = globalThis.setInterval;

export function installFakeClock(startMs) {
  let now = startMs;
  class FakeDate extends RealDate {
    constructor(...args) {
      if (args.length === 0) super(now);
      else super(...args);
    }
    static now() {
      return now;
    }
  }
  FakeDate.UTC = RealDate.UTC;
  FakeDate.parse = RealDate.parse;
  globalThis.Date = FakeDate;
  const shorten = (d) => (typeof d === "number" && d >= 1000 ? Math.max(1, Math.floor(d / 1000)) : d);
  globalThis.setTimeout = (fn, d, ...a) => realSetTimeout(fn, shorten(d), ...a);
  globalThis.setInterval = (fn, d, ...a) => realSetInterval(fn, shorten(d), ...a);
  return {
    now: () => now,
    set: (t) => {
      now = t;
    },
  };
}

/** Sleeps in real time (unaffected by the fake clock). */
export const realSleep = (ms) => new Promise((r) => realSetTimeout(r, ms));
