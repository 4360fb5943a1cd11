// Pure client logic against an in-memory fake of the gateway's HTTP contract.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync, renameSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startFakeGateway } from "./fake-gateway.js";
import { conformanceCases } from "./conformance.js";
import { GatewayClient, Stats, createAdapterClasses, PersistenceError, KINDS, usePersistence } from "../src/index.js";
import * as bk from "backtest-kit";

let gw;
before(async () => {
  gw = await startFakeGateway({ tokens: ["good-token", "rotated-token"] });
});
after(async () => {
  await gw.close();
});

const mkClient = (extra = {}) => {
  const stats = new Stats();
  const client = new GatewayClient({ url: gw.url, namespace: "team-a", name: "store", token: "good-token", retryBaseMs: 1, retryMaxMs: 5, stats, ...extra });
  return { client, stats, A: createAdapterClasses({ client, stats, defaults: () => ({ multiplier: 1, isolated: true }) }) };
};

test("adapter contract (fake gateway)", async (t) => {
  const { A, client } = mkClient();
  for (const [name, fn] of conformanceCases(A, "unit")) await t.test(name, fn);
  client.close();
});

test("exports exactly the 16 kinds", () => {
  const { A } = mkClient();
  assert.equal(KINDS.length, 16);
  assert.deepEqual(Object.keys(A).sort(), KINDS.map(([k]) => k).sort());
});

test("retries 503 with backoff, then succeeds", async () => {
  const { A, stats, client } = mkClient();
  gw.state.failNext.push({ status: 503, code: "Unavailable" }, { status: 503, code: "Unavailable" });
  await new A.signal("R", "s", "e").writeSignalData(null);
  assert.equal(stats.retries, 2);
  client.close();
});

test("retries are bounded and the error says what failed", async () => {
  const { A, client } = mkClient({ retries: 2 });
  for (let i = 0; i < 5; i++) gw.state.failNext.push({ status: 503, code: "Unavailable", message: "mongo down" });
  const err = await new A.signal("R", "s", "e").readSignalData().catch((e) => e);
  gw.state.failNext.length = 0;
  assert.ok(err instanceof PersistenceError, String(err));
  assert.equal(err.code, "Unavailable");
  assert.equal(err.status, 503);
  assert.equal(err.attempts, 3);
  assert.match(err.message, /signal read on tenant team-a\/store failed after 3 attempts: Unavailable \(HTTP 503\): mongo down/);
  client.close();
});

test("client errors are not retried and carry a hint", async () => {
  const { A, stats, client } = mkClient();
  gw.state.failNext.push({ status: 403, code: "Forbidden", message: "no update on backtestpersistences/data" });
  const err = await new A.state("x", "b").writeStateData({ id: "x_b", data: {}, when: 1 }, new Date(1)).catch((e) => e);
  assert.equal(err.code, "Forbidden");
  assert.equal(stats.retries, 0);
  assert.match(err.message, /RoleBinding/);
  const nf = new GatewayClient({ url: gw.url, namespace: "team-a", name: "missing", token: "good-token" });
  const e2 = await nf.op({ kind: "signal", op: "read", key: {} }).catch((e) => e);
  assert.equal(e2.code, "NotFound");
  nf.close();
  client.close();
});

test("network errors are retried, then reported as Network", async () => {
  const stats = new Stats();
  const c = new GatewayClient({ url: "http://127.0.0.1:1", namespace: "n", name: "x", token: "t", retries: 2, retryBaseMs: 1, stats });
  const err = await c.op({ kind: "log", op: "read", key: {} }).catch((e) => e);
  assert.equal(err.code, "Network");
  assert.equal(err.attempts, 3);
  assert.match(err.message, /ECONNREFUSED/);
  c.close();
});

test("token file is re-read when the kubelet rotates it", async () => {
  const dir = mkdtempSync(join(tmpdir(), "btp-token-"));
  const file = join(dir, "token");
  writeFileSync(file, "good-token\n");
  const { A, client } = mkClient({ token: undefined, tokenFile: file });
  await new A.signal("T", "s", "e").readSignalData();
  // Rotation: the old token stops working and the file is atomically replaced.
  gw.state.tokens.delete("good-token");
  writeFileSync(join(dir, "token.new"), "rotated-token\n");
  renameSync(join(dir, "token.new"), file);
  try {
    assert.equal(await new A.signal("T", "s", "e").readSignalData(), null);
  } finally {
    gw.state.tokens.add("good-token");
    client.close();
  }
});

test("a missing token file is a clear error", async () => {
  const c = new GatewayClient({ url: gw.url, namespace: "team-a", name: "store", tokenFile: "/nonexistent/token" });
  await assert.rejects(c.op({ kind: "log", op: "read", key: {} }), /cannot read token file \/nonexistent\/token/);
  c.close();
});

test("bad options fail fast with clear messages", () => {
  assert.throws(() => new GatewayClient({ namespace: "a", name: "b" }), /url is required/);
  assert.throws(() => new GatewayClient({ url: "ftp://x", namespace: "a", name: "b" }), /http:\/\/ or https:\/\//);
  assert.throws(() => new GatewayClient({ url: "http://x" , name: "b" }), /namespace is required/);
});

test("candle windows are served from memory once known", async () => {
  const { A, stats, client } = mkClient();
  const t0 = 1767225600000;
  const c = new A.candle("CACHE", "5m", "e");
  const list = Array.from({ length: 10 }, (_, i) => ({ timestamp: t0 + i * 300000, open: 1, high: 2, low: 0.5, close: 1.5, volume: i }));
  await c.writeCandlesData(list);
  const n = gw.state.requests.length;
  const w = await c.readCandlesData(4, t0 + 300000, t0 + 5 * 300000);
  assert.deepEqual(w.map((x) => x.volume), [1, 2, 3, 4]);
  assert.equal(gw.state.requests.length, n, "no request for a cached window");
  await c.writeCandlesData(list.slice(0, 3));
  assert.equal(gw.state.requests.length, n, "known candles are not resent");
  assert.equal(stats.candleCacheHits, 1);
  // A window read from the store fills the cache too.
  const other = mkClient();
  const c2 = new other.A.candle("CACHE", "5m", "e");
  await c2.readCandlesData(3, t0, t0 + 3 * 300000);
  const m = gw.state.requests.length;
  await c2.readCandlesData(2, t0, t0 + 2 * 300000);
  assert.equal(gw.state.requests.length, m);
  other.client.close();
  client.close();
});

test("overlapping whole-list writes are serialized and merged, unchanged rows not resent", async () => {
  const { A, stats, client } = mkClient();
  const s = new A.storage(false);
  const row = (id, v) => ({ id: `q-${id}`, status: "opened", priority: v, minuteEstimatedTime: 5 });
  gw.state.delayMs = 20;
  const n = gw.state.requests.length;
  await Promise.all([s.writeStorageData([row(1, 1)]), s.writeStorageData([row(1, 2), row(2, 1)]), s.writeStorageData([row(1, 3)])]);
  gw.state.delayMs = 0;
  const sent = gw.state.requests.slice(n);
  assert.equal(sent.length, 2, "the second and third write are merged into one request");
  assert.equal(stats.coalescedWrites, 1);
  const got = Object.fromEntries((await s.readStorageData()).filter((r) => r.id.startsWith("q-")).map((r) => [r.id, r.priority]));
  assert.deepEqual(got, { "q-1": 3, "q-2": 1 });
  const k = gw.state.requests.length;
  await s.writeStorageData([row(1, 3), row(2, 1)]);
  assert.equal(gw.state.requests.length, k, "a list whose rows are all unchanged is not sent");
  await s.writeStorageData([row(1, 4), row(2, 1)]);
  const last = gw.state.requests.at(-1);
  assert.deepEqual(last.value.map((r) => r.id), ["q-1"], "only changed rows are sent");
  client.close();
});

test("writes of one key land in issue order", async () => {
  const { A, client } = mkClient();
  const sig = new A.signal("ORD", "s", "e");
  gw.state.delayMs = 5;
  await Promise.all([1, 2, 3, 4].map((i) => sig.writeSignalData({ id: `v${i}`, minuteEstimatedTime: 1 })));
  gw.state.delayMs = 0;
  assert.equal((await sig.readSignalData()).id, "v4");
  client.close();
});

test("timing counters report calls per kind and method", async () => {
  const { A, stats, client } = mkClient();
  await new A.session("s", "e", "", "X", true).readSessionData();
  await new A.session("s", "e", "", "X", true).writeSessionData({ id: "i", data: {}, when: 1 }, new Date(1));
  const snap = stats.snapshot();
  assert.equal(snap.kinds.session.calls, 2);
  assert.equal(snap.kinds.session.methods.readSessionData.calls, 1);
  assert.ok(snap.kinds.session.ms > 0);
  assert.equal(snap.calls, 2);
  client.close();
});

test("usePersistence registers all 16 adapters with backtest-kit", async () => {
  const h = usePersistence({ url: gw.url, namespace: "team-a", name: "store", token: "good-token" });
  try {
    const n = gw.state.requests.length;
    await bk.PersistSignalAdapter.writeSignalData({ id: "via-bk", minuteEstimatedTime: null }, "BK", "s", "e");
    const back = await bk.PersistSignalAdapter.readSignalData("BK", "s", "e");
    assert.equal(back.minuteEstimatedTime, Infinity);
    assert.equal(back.multiplier, bk.getConfig().CC_SIGNAL_LEVERAGE_MULTIPLIER);
    await bk.PersistSessionAdapter.writeSessionData({ id: "x", data: { a: 1 }, when: 3 }, "s", "e", "", new Date(3), "BK", false);
    assert.deepEqual((await bk.PersistSessionAdapter.readSessionData("s", "e", "", "BK", false)).data, { a: 1 });
    await bk.PersistPartialAdapter.writePartialData({ p: { profitLevels: [10], lossLevels: [] } }, "BK", "s", "p", "e", new Date());
    assert.deepEqual(await bk.PersistPartialAdapter.readPartialData("BK", "s", "p", "e", new Date()), { p: { profitLevels: [10], lossLevels: [] } });
    await bk.PersistLogAdapter.writeLogData([{ id: "bk-log", topic: "t" }]);
    assert.ok((await bk.PersistLogAdapter.readLogData()).some((e) => e.id === "bk-log"));
    const keys = [];
    await bk.PersistMeasureAdapter.writeMeasureData({ id: "k", data: 1, removed: false }, "bk-bucket", "k", new Date());
    for await (const k of bk.PersistMeasureAdapter.listMeasureData("bk-bucket")) keys.push(k);
    assert.deepEqual(keys, ["k"]);
    const sent = gw.state.requests.slice(n);
    assert.ok(sent.find((r) => r.kind === "session" && r.op === "write" && r.when === 3 && r.key.frameName === "" && r.key.symbol === "BK"));
    assert.ok(sent.find((r) => r.kind === "partial" && r.key.signalId === "p" && r.key.strategyName === "s" && r.key.exchangeName === "e"));
    assert.equal(h.stats().kinds.signal.methods.readSignalData.calls, 1);
  } finally {
    h.close();
    for (const [, Name] of KINDS) bk[`Persist${Name}Adapter`].useJson();
  }
});

test("the TypeScript declarations compile", async (t) => {
  const { existsSync } = await import("node:fs");
  const { execFileSync } = await import("node:child_process");
  const tsc = new URL("../node_modules/typescript/bin/tsc", import.meta.url).pathname;
  if (!existsSync(tsc)) return t.skip("typescript is not installed (it comes with backtest-kit's peer dependencies)");
  const dts = new URL("../src/index.d.ts", import.meta.url).pathname;
  execFileSync(process.execPath, [tsc, "--noEmit", "--strict", "--module", "nodenext", "--moduleResolution", "nodenext", dts], { stdio: "pipe" });
});
