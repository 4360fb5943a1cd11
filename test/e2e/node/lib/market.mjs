// A synthetic exchange: deterministic OHLCV candles from a seeded random walk
// of 1-minute closes. No network: every candle is a pure function of
// (symbol, open time), so any two runs see the same market.
const MIN = 60000;
const ORIGIN = Date.UTC(2025, 0, 1); // minute 0 of every walk
const STEP_MIN = { "1m": 1, "3m": 3, "5m": 5, "15m": 15, "30m": 30, "1h": 60, "2h": 120, "4h": 240, "6h": 360, "8h": 480, "1d": 1440 };

function hash32(str) {
  let h = 2166136261;
  for (let i = 0; i < str.length; i++) {
    h ^= str.charCodeAt(i);
    h = Math.imul(h, 16777619);
  }
  return h >>> 0;
}

// mulberry32 step: a uniform in [0,1) from a 32-bit state.
function uniform(seed) {
  let t = (seed + 0x6d2b79f5) >>> 0;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

class Walk {
  constructor(symbol, start, sigma) {
    this.seed = hash32(symbol);
    this.closes = [start];
    this.sigma = sigma;
  }
  noise(i, salt) {
    return uniform((this.seed ^ Math.imul(i + 1, 0x9e3779b1) ^ Math.imul(salt, 0x85ebca6b)) >>> 0);
  }
  close(i) {
    if (i < 0) throw new Error(`synthetic market starts at ${new Date(ORIGIN).toISOString()}`);
    while (this.closes.length <= i) {
      const k = this.closes.length;
      // Box-Muller normal increment with a slight regime drift so trends exist.
      const u1 = Math.max(this.noise(k, 1), 1e-12);
      const u2 = this.noise(k, 2);
      const z = Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
      const drift = Math.sin(k / 240) * this.sigma * 0.15;
      this.closes.push(this.closes[k - 1] * Math.exp(drift + this.sigma * z));
    }
    return this.closes[i];
  }
  candle1m(i) {
    const open = i === 0 ? this.closes[0] : this.close(i - 1);
    const close = this.close(i);
    const wick = this.sigma * 0.5;
    return {
      open,
      high: Math.max(open, close) * (1 + wick * this.noise(i, 3)),
      low: Math.min(open, close) * (1 - wick * this.noise(i, 4)),
      close,
      volume: 10 + 90 * this.noise(i, 5),
    };
  }
}

const walks = new Map();
function walk(symbol) {
  let w = walks.get(symbol);
  if (!w) walks.set(symbol, (w = new Walk(symbol, 100 + (hash32(symbol) % 900), 0.0012)));
  return w;
}

const round = (x) => Math.round(x * 1e6) / 1e6;

/** The candle of `interval` that opens at `ts` (ms, aligned). */
export function candleAt(symbol, interval, ts) {
  const n = STEP_MIN[interval];
  if (!n) throw new Error(`unknown interval ${interval}`);
  const first = Math.round((ts - ORIGIN) / MIN);
  const w = walk(symbol);
  let c = null;
  for (let k = 0; k < n; k++) {
    const m = w.candle1m(first + k);
    if (!c) c = { ...m };
    else {
      c.high = Math.max(c.high, m.high);
      c.low = Math.min(c.low, m.low);
      c.close = m.close;
      c.volume += m.volume;
    }
  }
  return { timestamp: ts, open: round(c.open), high: round(c.high), low: round(c.low), close: round(c.close), volume: round(c.volume) };
}

/** backtest-kit exchange schema serving the synthetic market; counts the candles it served. */
export function syntheticExchange(exchangeName) {
  const counter = { calls: 0, candles: 0 };
  return {
    counter,
    schema: {
      exchangeName,
      note: "deterministic seeded random walk (offline)",
      getCandles: async (symbol, interval, since, limit) => {
        counter.calls++;
        const step = STEP_MIN[interval] * MIN;
        const t0 = Math.ceil(since.getTime() / step) * step;
        const out = [];
        for (let i = 0; i < limit; i++) out.push(candleAt(symbol, interval, t0 + i * step));
        counter.candles += out.length;
        return out;
      },
      formatPrice: async (_symbol, price) => price.toFixed(6),
      formatQuantity: async (_symbol, q) => q.toFixed(8),
    },
  };
}
