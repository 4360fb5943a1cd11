// A fake clock for running backtest-kit's live mode offline, fast and repeatably.
//
// Date.now() and `new Date()` return a virtual time that only the driver moves,
// and timers of a second or more are shortened 1000x so backtest-kit's 5-second
// minute-boundary poll reacts within milliseconds. The driver moves the clock to
// the next minute only after the previous minute's tick has finished, so every
// minute is ticked exactly once whatever the persistence latency.
//
// With `{ frameworkTimersOnly: true }` only the timers that backtest-kit sets are
// shortened (told by the caller's stack), so database drivers and persistence clients
// keep their real timeouts, heartbeats and retry delays.
const RealDate = Date;
const realSetTimeout = globalThis.setTimeout;
const realSetInterval = globalThis.setInterval;

// The packages whose timers are the framework's: backtest-kit and the scheduling
// library it runs on (whose timers re-arm themselves from their own callbacks).
const FRAMEWORK = new Set(["backtest-kit", "functools-kit"]);
const PACKAGE = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//g;

// frameworkTimer reports whether the timer being set comes from the framework alone:
// the caller's stack has package frames, all of them the framework's.
function frameworkTimer() {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 40;
  const stack = new Error().stack ?? "";
  Error.stackTraceLimit = limit;
  let any = false;
  for (const [, name] of stack.matchAll(PACKAGE)) {
    if (!FRAMEWORK.has(name)) return false;
    any = true;
  }
  return any;
}

export function installFakeClock(startMs, { frameworkTimersOnly = false } = {}) {
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
  // Named Date: libraries that map types by constructor name (mongoose schemas) accept it.
  Object.defineProperty(FakeDate, "name", { value: "Date" });
  FakeDate.UTC = RealDate.UTC;
  FakeDate.parse = RealDate.parse;
  globalThis.Date = FakeDate;
  const shorten = (d) =>
    typeof d === "number" && d >= 1000 && (!frameworkTimersOnly || frameworkTimer()) ? Math.max(1, Math.floor(d / 1000)) : d;
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
