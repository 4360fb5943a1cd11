/**
 * Timing counters: how many persistence calls backtest-kit made, per kind and
 * method, and how long it waited for them. Time is measured around each adapter
 * method, so it includes the in-process candle cache, queueing and retries.
 * `ms` adds up the duration of every call (overlapping calls count twice);
 * `busyMs` is the wall time during which at least one call was in flight.
 */

/** Stats accumulates per-kind, per-method counters. */
export class Stats {
  constructor() {
    this.reset();
  }

  /** Clears every counter. */
  reset() {
    /** @type {Map<string, {calls:number, ms:number, errors:number}>} */
    this.byMethod = new Map();
    this.requests = 0;
    this.writeRequests = 0;
    this.retries = 0;
    this.candleCacheHits = 0;
    this.candleCacheMisses = 0;
    this.coalescedWrites = 0;
    this.batches = 0;
    this.batchedOps = 0;
    this.inFlight = 0;
    this.busySince = 0;
    this.busyMs = 0;
  }

  /** Marks the start of an adapter call (for the busy-time union). */
  enter() {
    if (this.inFlight++ === 0) this.busySince = performance.now();
  }

  /** Marks the end of an adapter call. */
  leave() {
    if (--this.inFlight === 0) this.busyMs += performance.now() - this.busySince;
  }

  /** Records one adapter call. */
  record(kind, method, ms, failed) {
    const k = `${kind}\u0000${method}`;
    let c = this.byMethod.get(k);
    if (!c) {
      c = { calls: 0, ms: 0, errors: 0 };
      this.byMethod.set(k, c);
    }
    c.calls++;
    c.ms += ms;
    if (failed) c.errors++;
  }

  /**
   * A plain snapshot: totals, per kind (with per-method detail) and transport counters.
   * @returns {import("./index.js").PersistenceStats}
   */
  snapshot() {
    const kinds = {};
    let calls = 0;
    let ms = 0;
    let errors = 0;
    for (const [k, c] of this.byMethod) {
      const [kind, method] = k.split("\u0000");
      const kk = (kinds[kind] ??= { calls: 0, ms: 0, errors: 0, methods: {} });
      kk.calls += c.calls;
      kk.ms += c.ms;
      kk.errors += c.errors;
      kk.methods[method] = { ...c };
      calls += c.calls;
      ms += c.ms;
      errors += c.errors;
    }
    const busyMs = this.busyMs + (this.inFlight > 0 ? performance.now() - this.busySince : 0);
    return {
      calls,
      ms,
      busyMs,
      errors,
      kinds,
      requests: this.requests,
      writeRequests: this.writeRequests,
      retries: this.retries,
      candleCache: { hits: this.candleCacheHits, misses: this.candleCacheMisses },
      coalescedWrites: this.coalescedWrites,
      batches: { requests: this.batches, ops: this.batchedOps },
    };
  }
}

/**
 * Wraps every method of an adapter class prototype so each call is timed into
 * stats under `kind`. Works for backtest-kit's own file adapters too, so a run
 * with the file adapters can be measured the same way.
 * @template {new (...args: any[]) => any} C
 * @param {C} Base adapter class
 * @param {string} kind kind name for the counters
 * @param {Stats} stats counters
 * @returns {C}
 */
export function timed(Base, kind, stats) {
  const Timed = class extends Base {};
  Object.defineProperty(Timed, "name", { value: `Timed${Base.name}` });
  for (let proto = Base.prototype; proto && proto !== Object.prototype; proto = Object.getPrototypeOf(proto)) {
    for (const name of Object.getOwnPropertyNames(proto)) {
      if (name === "constructor" || Object.prototype.hasOwnProperty.call(Timed.prototype, name)) continue;
      const d = Object.getOwnPropertyDescriptor(proto, name);
      if (!d || typeof d.value !== "function") continue;
      const fn = d.value;
      const isGen = fn.constructor && fn.constructor.name === "AsyncGeneratorFunction";
      let wrapped;
      if (isGen) {
        // Only the time spent inside next() counts, not the consumer's work between items.
        wrapped = async function* (...args) {
          const it = fn.apply(this, args);
          let spent = 0;
          let failed = false;
          try {
            for (;;) {
              const t0 = performance.now();
              let r;
              stats.enter();
              try {
                r = await it.next();
              } finally {
                stats.leave();
                spent += performance.now() - t0;
              }
              if (r.done) return;
              yield r.value;
            }
          } catch (e) {
            failed = true;
            throw e;
          } finally {
            stats.record(kind, name, spent, failed);
          }
        };
      } else if (name === "dispose") {
        wrapped = function (...args) {
          return fn.apply(this, args);
        };
      } else {
        wrapped = async function (...args) {
          const t0 = performance.now();
          let failed = false;
          stats.enter();
          try {
            return await fn.apply(this, args);
          } catch (e) {
            failed = true;
            throw e;
          } finally {
            stats.leave();
            stats.record(kind, name, performance.now() - t0, failed);
          }
        };
      }
      Object.defineProperty(Timed.prototype, name, { value: wrapped, writable: true, configurable: true });
    }
  }
  return Timed;
}
