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

/** Starts a fake gateway on a free loopback port. */
export async function startFakeGateway({ tokens = ["good-token"] } = {}) {
  const state = {
    tokens: new Set(tokens),
    records: new Map(), // kind|ctx → {key, value}
    lists: new Map(), // kind|ctx → Map(id → item)
    candles: new Map(), // series → Map(ts → candle)
    requests: [], // every parsed request (ops), for assertions
    failNext: [], // queue of {status, code} answers to give before serving
    failIf: null, // (request) => {status, code} | null: an answer to give instead of serving it
    maxPayloadBytes: 4 << 20, // a write whose value is larger gets 413 TooLarge, as from the store
    delayMs: 0,
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
      let body;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      } catch {
        return send(400, { code: "InvalidRequest", message: "malformed JSON" });
      }
      if (state.delayMs) await new Promise((r) => setTimeout(r, state.delayMs));
      const f = state.failNext.shift();
      if (f) return send(f.status, { code: f.code, message: f.message ?? "injected" });
      try {
        if (m[3] === "batch") {
          const results = body.ops.map((op) => {
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
      for (const c of r.value) if (!s.has(c.timestamp)) s.set(c.timestamp, c);
      return {};
    }
    throw bad(`op ${op} not supported on candle`);
  }
  if (kind in LIST) {
    const lk = `${kind}|${canon(key)}`;
    let l = state.lists.get(lk);
    if (!l) state.lists.set(lk, (l = new Map()));
    if (op === "read") return { value: [...l.values()] };
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
