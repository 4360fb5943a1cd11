// The adapter contract against a running gateway of the operator.
// Set BACKTEST_PERSISTENCE_TEST_URL, _NAMESPACE, _NAME and _TOKEN (or _TOKEN_FILE; _CA_FILE for TLS);
// without them these tests are skipped.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { conformanceCases } from "./conformance.js";
import { GatewayClient, Stats, createAdapterClasses, PersistenceError } from "../src/index.js";

const env = process.env;
const P = "BACKTEST_PERSISTENCE_TEST_";
const url = env[`${P}URL`];
const skip = url
  ? false
  : `no gateway: set ${P}URL, ${P}NAMESPACE, ${P}NAME and ${P}TOKEN (or ${P}TOKEN_FILE) to run the contract against a real gateway`;
const opts = () => ({
  url,
  namespace: env[`${P}NAMESPACE`],
  name: env[`${P}NAME`],
  token: env[`${P}TOKEN`],
  tokenFile: env[`${P}TOKEN_FILE`],
  caFile: env[`${P}CA_FILE`],
});

test("adapter contract against the gateway", { skip }, async (t) => {
  const run = randomBytes(4).toString("hex");
  for (const cacheSize of [200000, 0]) {
    const stats = new Stats();
    const client = new GatewayClient({ ...opts(), stats });
    const A = createAdapterClasses({ client, stats, candleCacheSize: cacheSize, defaults: () => ({ multiplier: 1, isolated: true }) });
    try {
      for (const [name, fn] of conformanceCases(A, `${run}-${cacheSize}`)) await t.test(`${name} (candle cache ${cacheSize ? "on" : "off"})`, fn);
    } finally {
      client.close();
    }
  }
});

test("a batch answers each operation on its own", { skip }, async () => {
  const client = new GatewayClient(opts());
  try {
    const run = randomBytes(4).toString("hex");
    const key = { symbol: `B-${run}`, strategyName: "s", exchangeName: "e" };
    const res = await client.batch([
      { kind: "signal", op: "write", key, value: { id: "b1" } },
      { kind: "signal", op: "read", key },
    ]);
    assert.equal(res.length, 2);
    assert.deepEqual(res[1].value, { id: "b1" });
  } finally {
    client.close();
  }
});

test("a batch with one bad operation is rejected whole and writes nothing", { skip }, async () => {
  const client = new GatewayClient(opts());
  try {
    const run = randomBytes(4).toString("hex");
    const key = { symbol: `R-${run}`, strategyName: "s", exchangeName: "e" };
    const err = await client
      .batch([
        { kind: "signal", op: "write", key, value: { id: "r1" } },
        { kind: "nope", op: "read", key: {} },
      ])
      .catch((e) => e);
    assert.equal(err.code, "InvalidRequest");
    assert.match(err.message, /ops\[1\]/);
    const read = await client.op({ kind: "signal", op: "read", key });
    assert.equal(read.value, null);
  } finally {
    client.close();
  }
});

test("bad input is rejected with InvalidRequest and no retry", { skip }, async () => {
  const stats = new Stats();
  const client = new GatewayClient({ ...opts(), stats });
  try {
    const err = await client.op({ kind: "signal", op: "read", key: { symbol: "x" } }).catch((e) => e);
    assert.ok(err instanceof PersistenceError, String(err));
    assert.equal(err.code, "InvalidRequest");
    assert.equal(err.status, 400);
    assert.equal(stats.retries, 0);
  } finally {
    client.close();
  }
});

test("a wrong token is Unauthorized", { skip }, async () => {
  const client = new GatewayClient({ ...opts(), token: "not-a-token", tokenFile: undefined });
  try {
    const err = await client.op({ kind: "log", op: "read", key: {} }).catch((e) => e);
    assert.equal(err.code, "Unauthorized");
  } finally {
    client.close();
  }
});

test("an unknown tenant is NotFound", { skip }, async () => {
  const client = new GatewayClient({ ...opts(), name: `missing-${randomBytes(3).toString("hex")}` });
  try {
    const err = await client.op({ kind: "log", op: "read", key: {} }).catch((e) => e);
    assert.equal(err.code, "NotFound");
  } finally {
    client.close();
  }
});

test("whole lists of the framework's largest sizes are written in parts and read back", { skip }, async () => {
  const stats = new Stats();
  const client = new GatewayClient({ ...opts(), stats, timeoutMs: 120000 });
  const A = createAdapterClasses({ client, stats });
  try {
    const run = randomBytes(4).toString("hex");
    // Log: backtest-kit keeps 1,000 entries (CC_MAX_LOG_LINES); 5 KB of args each. Times in
    // 2100, so they are the newest and highest-priority items of the tenant's shared log.
    const T = 4102444800000;
    const entries = Array.from({ length: 1000 }, (_, i) => ({
      id: `big-${run}-${i}`, type: "log", topic: "t", priority: T + i, timestamp: T + i,
      createdAt: new Date(T + i).toISOString(), args: [{ blob: "l".repeat(5000), i }],
    }));
    const before = stats.requests;
    await new A.log().writeLogData(entries);
    const logRequests = stats.requests - before;
    assert.ok(logRequests >= 5, `5 MB of log entries went in ${logRequests} request(s), want parts under 1 MiB`);
    const logs = (await new A.log().readLogData()).filter((e) => e.id.startsWith(`big-${run}-`));
    assert.equal(logs.length, 1000);
    const byId = new Map(logs.map((e) => [e.id, e]));
    for (const e of entries) assert.deepEqual(byId.get(e.id), e);
    // Notification: backtest-kit keeps 500 (CC_MAX_NOTIFICATIONS); 20 KB each. Own context (backtest true).
    const notes = Array.from({ length: 500 }, (_, i) => ({
      id: `note-${run}-${i}`, type: "signal.opened", backtest: true, createdAt: T + i, symbol: "BTCUSDT", text: "n".repeat(20000),
    }));
    const inst = new A.notification(true);
    await inst.writeNotificationData(notes);
    const back = (await inst.readNotificationData()).filter((n) => n.id.startsWith(`note-${run}-`));
    assert.equal(back.length, 500);
    const nb = new Map(back.map((n) => [n.id, n]));
    for (const n of notes) assert.deepEqual(nb.get(n.id), n);
    // an unchanged resend sends nothing; one changed item sends one small request
    const r0 = stats.requests;
    await inst.writeNotificationData(notes);
    assert.equal(stats.requests, r0);
    await inst.writeNotificationData([...notes.slice(1), { ...notes[0], text: "changed" }]);
    assert.equal(stats.requests, r0 + 1);
    assert.equal((await inst.readNotificationData()).find((n) => n.id === notes[0].id).text, "changed");
  } finally {
    client.close();
  }
});

test("the candle cache holds the stored version of a candle, and no candle the gateway skipped", { skip }, async () => {
  const run = randomBytes(4).toString("hex");
  const first = new GatewayClient(opts());
  const stats = new Stats();
  const client = new GatewayClient({ ...opts(), stats });
  try {
    const t0 = Math.floor(Date.now() / 60000) * 60000 - 10 * 60000;
    const c = (ts, close) => ({ timestamp: ts, open: 1, high: 2, low: 0.5, close, volume: 1 });
    const key = { exchangeName: "e", symbol: `CS-${run}`, interval: "1m" };
    await first.op({ kind: "candle", op: "write", key, value: [c(t0, 1)] });
    // This process's clock runs an hour ahead: it believes the current minute has closed, the gateway does not.
    const A = createAdapterClasses({ client, stats, now: () => Date.now() + 3600000 });
    const s = new A.candle(key.symbol, "1m", "e");
    const open = Math.floor(Date.now() / 60000) * 60000 + 60000;
    await s.writeCandlesData([c(t0, 2), c(t0 + 60000, 2), c(open, 2)]);
    const w = await s.readCandlesData(2, t0, t0 + 120000);
    assert.deepEqual(w.map((x) => x.close), [1, 2], "the first-written version");
    assert.equal(await s.readCandlesData(1, open, open + 60000), null, "the unclosed candle was not stored, so not cached");
  } finally {
    first.close();
    client.close();
  }
});

test("dictionary through the gateway: one document per (signalId, dictionaryName), overwritten whole", { skip }, async () => {
  const client = new GatewayClient(opts());
  try {
    const run = randomBytes(4).toString("hex");
    const key = { signalId: `d-${run}`, dictionaryName: "levels" };
    assert.deepEqual(await client.op({ kind: "dictionary", op: "read", key }), { value: null });
    const snap = { id: `d-${run}_levels`, data: { "a.b": { value: [[1, 2]], when: 5 } }, when: 5 };
    await client.op({ kind: "dictionary", op: "write", key, value: snap, when: 5 });
    assert.deepEqual((await client.op({ kind: "dictionary", op: "read", key })).value, snap);
    const err = await client.op({ kind: "dictionary", op: "write", key, value: null, when: 6 }).catch((e) => e);
    assert.equal(err.code, "InvalidRequest");
    const bad = await client.op({ kind: "dictionary", op: "read", key: { signalId: "x", bucketName: "y" } }).catch((e) => e);
    assert.equal(bad.code, "InvalidRequest");
  } finally {
    client.close();
  }
});

test("concurrent writes share batch requests and are each acknowledged", { skip }, async () => {
  const run = randomBytes(4).toString("hex");
  const stats = new Stats();
  const client = new GatewayClient({ ...opts(), stats });
  try {
    const key = (i) => ({ symbol: `W-${run}-${i}`, strategyName: "s", exchangeName: "e" });
    const writes = Array.from({ length: 40 }, (_, i) => client.op({ kind: "signal", op: "write", key: key(i), value: { id: `w${i}` } }));
    // One bad write (a key part over the store's limit) fails alone.
    const bad = client.op({ kind: "signal", op: "write", key: { ...key("bad"), symbol: "x".repeat(600) }, value: { id: "bad" } });
    const rs = await Promise.allSettled([...writes, bad]);
    assert.ok(rs.slice(0, 40).every((r) => r.status === "fulfilled"), String(rs.find((r) => r.status === "rejected")?.reason));
    assert.equal(rs[40].status, "rejected");
    assert.ok(rs[40].reason instanceof PersistenceError);
    assert.match(rs[40].reason.code, /^(TooLarge|InvalidRequest)$/);
    assert.ok(stats.batches >= 1 && stats.requests < 41, `requests ${stats.requests}, batches ${stats.batches}`);
    for (const i of [0, 17, 39]) assert.deepEqual((await client.op({ kind: "signal", op: "read", key: key(i) })).value, { id: `w${i}` });
  } finally {
    client.close();
  }
});
