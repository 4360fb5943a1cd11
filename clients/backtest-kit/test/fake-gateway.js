/**
 * A minimal in-memory implementation of the gateway's HTTP contract, for the
 * client's pure-logic tests only (retries, token rotation, caching, queueing,
 * adapter semantics). It is a test double: the whole-system tests and
 * gateway.test.js use the real operator.
 */
import http from "node:http";

const LIST = { storage: "upsert", notification: "upsert", log: "insert" };
const EMPTY = {
  signal: null, schedule: null, strategy: null, risk: [], partial: {}, breakeven: {}, candle: null,
  storage: [], notification: [], log: [], measure: null, interval: null, memory: null,
  recent: null, state: null, session: null, dictionary: null,
};
const ITEM = { measure: "key", interval: "key", memory: "memoryId" };
const STEP = { "1m": 1, "3m": 3, "5m": 5, "15m": 15, "30m": 30, "1h": 60, "2h": 120, "4h": 240, "6h": 360, "8h": 480, "1d": 1440 };

const canon = (o) => JSON.stringify(Object.keys(o ?? {}).sort().map((k) => [k, o[k]]));

/** What the store's list reads return (its kinds table, Head): the n items of highest sort field. */
export const LIST_WINDOWS = {
  storage: { n: 50, sort: (it) => Number(it.priority) || 0 },
  notification: { n: 500, sort: (it) => Number(it.createdAt) || 0 },
  log: { n: 1000, sort: (it) => Number(it.priority) || 0 },
};

/** Starts a fake gateway on a free loopback port. */
export async function startFakeGateway({ tokens = ["good-token"] } = {}) {
  const state = {
    tokens: new Set(tokens),
    records: new Map(), // kind|ctx → {key, value}
    lists: new Map(), // kind|ctx → Map(id → item)
    listWindows: {}, // kind → {n, sort}: list reads return the n items of highest sort (LIST_WINDOWS); none: every item
    candles: new Map(), // series → Map(ts → candle)
    requests: [], // every parsed request (ops), for assertions
    failNext: [], // queue of {status, code} answers to give before serving
    failIf: null, // (request) => {status, code} | null: an answer to give instead of serving it
    maxPayloadBytes: 4 << 20, // a write whose value is larger gets 413 TooLarge, as from the store
    delayMs: 0, // or (body) => ms
    http: { ops: 0, batch: 0 }, // HTTP requests served per route
    batchSizes: [], // operations per batch request
    maxBatchOps: 500,
    maxBodyBytes: 8 << 20,
    now: () => Date.now(), // the gateway's clock: candles not closed by it are skipped
    legacyCandleWrites: false, // answer candle writes with {} as gateways before the stored-candles Result did
    failOp: null, // (op) => {code, message} | null: a run-time error in that operation's slot
  };
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", async () => {
      const send = (status, body) => {
        const b = Buffer.from(JSON.stringify(body));
        res.writeHead(status, { "content-type": "application/json", "content-length": b.length });
        res.end(b);
      };
      const m = /^\/v1\/namespaces\/([^/]+)\/persistences\/([^/]+)\/(ops|batch)$/.exec(req.url);
      if (!m || req.method !== "POST") return send(404, { code: "NotFound", message: `no route ${req.method} ${req.url}` });
      const auth = req.headers.authorization ?? "";
      if (!auth.startsWith("Bearer ") || !state.tokens.has(auth.slice(7))) {
        return send(401, { code: "Unauthorized", message: "token rejected" });
      }
      if (decodeURIComponent(m[1]) !== "team-a" || decodeURIComponent(m[2]) !== "store") {
        return send(404, { code: "NotFound", message: "no such BacktestPersistence" });
      }
      const raw = Buffer.concat(chunks);
      if (raw.length > state.maxBodyBytes) return send(413, { code: "TooLarge", message: `body over ${state.maxBodyBytes} bytes` });
      let body;
      try {
        body = JSON.parse(raw.toString("utf8"));
      } catch {
        return send(400, { code: "InvalidRequest", message: "malformed JSON" });
      }
      const delay = typeof state.delayMs === "function" ? state.delayMs(body) : state.delayMs;
      if (delay) await new Promise((r) => setTimeout(r, delay));
      const f = state.failNext.shift();
      if (f) return send(f.status, { code: f.code, message: f.message ?? "injected" });
      try {
        state.http[m[3]]++;
        if (m[3] === "batch") {
          if (!Array.isArray(body.ops) || body.ops.length === 0) return send(400, { code: "InvalidRequest", message: "ops must be a non-empty array" });
          if (body.ops.length > state.maxBatchOps) return send(413, { code: "TooLarge", message: `batch of ${body.ops.length} ops, over ${state.maxBatchOps}` });
          // As the gateway: every operation is validated before any runs.
          const badAt = body.ops.findIndex((op) => !op || !(op.kind in EMPTY));
          if (badAt >= 0) return send(400, { code: "InvalidRequest", message: `ops[${badAt}]: unknown kind ${body.ops[badAt]?.kind}` });
          state.batchSizes.push(body.ops.length);
          const results = body.ops.map((op) => {
            const injected = state.failOp?.(op);
            if (injected) return { error: injected };
            try {
              return serve(state, op);
            } catch (e) {
              return { error: { code: e.code ?? "Internal", message: e.message } };
            }
          });
          return send(200, { results });
        }
        return send(200, serve(state, body));
      } catch (e) {
        return send(e.status ?? 500, { code: e.code ?? "Internal", message: e.message });
      }
    });
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    state,
    close: () => new Promise((r) => server.close(r)),
    server,
  };
}

function bad(message) {
  return Object.assign(new Error(message), { status: 400, code: "InvalidRequest" });
}

function serve(state, r) {
  state.requests.push(r);
  const f = state.failIf?.(r);
  if (f) throw Object.assign(new Error(f.message ?? "injected"), f);
  if (r.value !== undefined && Buffer.byteLength(JSON.stringify(r.value)) > state.maxPayloadBytes) {
    throw Object.assign(new Error(`value is over ${state.maxPayloadBytes} bytes`), { status: 413, code: "TooLarge" });
  }
  const { kind, op } = r;
  if (!(kind in EMPTY)) throw bad(`unknown kind ${kind}`);
  const key = r.key ?? {};
  if (kind === "candle") {
    const series = canon(key);
    const step = STEP[key.interval] * 60000;
    let s = state.candles.get(series);
    if (!s) state.candles.set(series, (s = new Map()));
    if (op === "read") {
      const out = [];
      for (let i = 0; i < r.limit; i++) {
        const c = s.get(r.since + i * step);
        if (!c) return { value: null };
        out.push(c);
      }
      return { value: out };
    }
    if (op === "write") {
      // Insert-only, first written wins; a candle not closed by the gateway's clock is skipped.
      const now = state.now();
      const asked = new Set();
      for (const c of r.value) {
        if (c.timestamp + step > now) continue;
        asked.add(c.timestamp);
        if (!s.has(c.timestamp)) s.set(c.timestamp, c);
      }
      if (state.legacyCandleWrites) return {};
      return { value: [...asked].sort((a, b) => a - b).map((ts) => s.get(ts)) };
    }
    throw bad(`op ${op} not supported on candle`);
  }
  if (kind in LIST) {
    const lk = `${kind}|${canon(key)}`;
    let l = state.lists.get(lk);
    if (!l) state.lists.set(lk, (l = new Map()));
    if (op === "read") {
      // As the store: the window backtest-kit keeps, ascending by its sort field.
      const w = state.listWindows[kind];
      const items = [...l.values()];
      if (!w) return { value: items };
      const sorted = items.map((it, i) => [w.sort(it), i, it]).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
      return { value: sorted.slice(Math.max(0, sorted.length - w.n)).map((x) => x[2]) };
    }
    if (op === "write") {
      for (const it of r.value) {
        if (LIST[kind] === "insert" && l.has(it.id)) continue;
        l.set(it.id, it);
      }
      return {};
    }
    throw bad(`op ${op} not supported on ${kind}`);
  }
  const rk = `${kind}|${canon(key)}`;
  const rec = state.records.get(rk);
  switch (op) {
    case "read":
      if (!rec || (ITEM[kind] && rec.value && rec.value.removed)) return { value: EMPTY[kind] };
      return { value: rec.value };
    case "has":
      return { has: Boolean(rec) };
    case "write":
      state.records.set(rk, { key, value: r.value === undefined ? null : r.value, when: r.when });
      return {};
    case "remove":
      if (rec && rec.value) rec.value = { ...rec.value, removed: true };
      return {};
    case "list": {
      const out = [];
      for (const [k, v] of state.records) {
        if (!k.startsWith(`${kind}|`)) continue;
        const ctxMatch = Object.entries(key).every(([f, x]) => v.key[f] === x);
        if (!ctxMatch || !v.value || v.value.removed) continue;
        out.push(kind === "memory" ? { memoryId: v.key.memoryId, data: v.value } : v.key.key);
      }
      return { value: out };
    }
    default:
      throw bad(`unknown op ${op}`);
  }
}
