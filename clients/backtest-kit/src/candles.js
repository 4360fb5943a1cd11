/**
 * In-process cache of candle windows. Stored candles never change (the store is
 * insert-only), so a window whose every candle is known is served from memory,
 * and candles known to be stored are not sent again. It holds only what the
 * gateway returned (reads, and the stored candles a write answers with), never
 * what this process sent: the store keeps the first-written version of a candle
 * and skips those not closed by its clock.
 */

/** Minutes per backtest-kit candle interval. */
export const INTERVAL_MINUTES = {
  "1m": 1,
  "3m": 3,
  "5m": 5,
  "15m": 15,
  "30m": 30,
  "1h": 60,
  "2h": 120,
  "4h": 240,
  "6h": 360,
  "8h": 480,
  "1d": 1440,
};

/** @returns {number} the step of an interval in ms */
export function intervalStepMs(interval) {
  const m = INTERVAL_MINUTES[interval];
  if (!m) throw new Error(`backtest-persistence: unknown candle interval ${JSON.stringify(interval)}`);
  return m * 60000;
}

/**
 * The candles a write's Result says the store holds: the stored version of each
 * candle of the request, ascending, without those the store skipped (not closed
 * by its clock). Only timestamps the request carried are taken. An older gateway
 * answers a write with {} and then nothing is known from the write.
 * @param {any} result the gateway's answer to a candle write
 * @param {object[]} sent the candles of the request
 * @returns {object[]}
 */
export function storedCandles(result, sent) {
  const v = result?.value;
  if (!Array.isArray(v) || v.length === 0) return [];
  const asked = new Set(sent.map((c) => c.timestamp));
  return v.filter((c) => c !== null && typeof c === "object" && asked.has(c.timestamp));
}

/** CandleCache holds up to maxCandles candles, evicting the oldest inserted. */
export class CandleCache {
  /** @param {number} maxCandles 0 disables the cache */
  constructor(maxCandles = 200000) {
    this.max = maxCandles;
    /** @type {Map<string, object>} */
    this.map = new Map();
  }

  /**
   * The window [since, since+limit*step) of one series, or null if any candle is unknown.
   * @returns {object[] | null}
   */
  window(series, since, step, limit) {
    if (this.max <= 0 || limit <= 0) return null;
    const out = new Array(limit);
    for (let i = 0; i < limit; i++) {
      const c = this.map.get(`${series}\u0000${since + i * step}`);
      if (!c) return null;
      out[i] = { ...c };
    }
    return out;
  }

  /** True when the candle at ts of series is known to be stored. */
  has(series, ts) {
    return this.map.has(`${series}\u0000${ts}`);
  }

  /** Remembers stored candles (first one wins, as in the store). */
  add(series, candles) {
    if (this.max <= 0) return;
    for (const c of candles) {
      if (!c || typeof c.timestamp !== "number") continue;
      const k = `${series}\u0000${c.timestamp}`;
      if (this.map.has(k)) continue;
      this.map.set(k, { ...c });
    }
    while (this.map.size > this.max) {
      this.map.delete(this.map.keys().next().value);
    }
  }
}
