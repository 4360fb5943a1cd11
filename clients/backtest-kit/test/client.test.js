// Pure client logic against an in-memory fake of the gateway's HTTP contract.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync, renameSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startFakeGateway } from "./fake-gateway.js";
import { conformanceCases } from "./conformance.js";
import { GatewayClient, Stats, createAdapterClasses, PersistenceError, KINDS, OPTIONAL_KINDS, usePersistence, useTimedFileAdapters } from "../src/index.js";
import { splitListParts, sendListInParts } from "../src/listwrite.js";
import { standinKit, registeredCtors, PersistDictionaryAdapter, setDictionaryValue } from "./standin-backtest-kit-20.js";
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

test("exports exactly the 17 kinds; only dictionary is optional", () => {
  const { A } = mkClient();
  assert.equal(KINDS.length, 17);
  assert.deepEqual(Object.keys(A).sort(), KINDS.map(([k]) => k).sort());
  assert.deepEqual([...OPTIONAL_KINDS], ["dictionary"]);
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

test("record writes of one key queued behind a running one collapse into the newest", async () => {
  const { A, stats, client } = mkClient();
  const recent = new A.recent("COAL", "s", "e", "", true);
  const row = (i) => ({ id: `r${i}`, timestamp: i, minuteEstimatedTime: 1 });
  gw.state.delayMs = 20;
  const n = gw.state.requests.length;
  const before = stats.coalescedWrites;
  await Promise.all([1, 2, 3, 4, 5].map((i) => recent.writeRecentData(row(i), new Date(1000 + i))));
  gw.state.delayMs = 0;
  const sent = gw.state.requests.slice(n);
  assert.equal(sent.length, 2, "the first write runs, the four queued behind it go as one");
  assert.equal(stats.coalescedWrites - before, 3);
  assert.equal(sent[1].value.id, "r5", "the newest value is sent");
  assert.equal(sent[1].when, 1005, "with the newest write's when");
  assert.equal((await recent.readRecentData()).id, "r5");
  // A merged write refused for its value: each merged write then gets its own verdict.
  const big = { id: "big", timestamp: 9, pad: "x".repeat(gw.state.maxPayloadBytes + 10) };
  gw.state.delayMs = 20;
  const verdicts = await Promise.allSettled([recent.writeRecentData(row(6), new Date(1006)), recent.writeRecentData(row(7), new Date(1007)), recent.writeRecentData(big, new Date(1008))]);
  gw.state.delayMs = 0;
  assert.deepEqual(verdicts.map((v) => v.status), ["fulfilled", "fulfilled", "rejected"], "only the oversized write fails");
  assert.equal(verdicts[2].reason.code, "TooLarge");
  assert.equal((await recent.readRecentData()).id, "r7", "the last good write is stored");
  // A remove queued after a write is not merged away, nor merged into.
  const m = new A.measure("coal-bucket");
  gw.state.delayMs = 10;
  const data = (v) => ({ id: "k", data: v, removed: false });
  await Promise.all([m.writeMeasureData(data(1), "k", new Date(1)), m.writeMeasureData(data(2), "k", new Date(2)), m.removeMeasureData("k")]);
  gw.state.delayMs = 0;
  assert.equal(await m.readMeasureData("k"), null, "the last operation, the remove, wins");
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

test("usePersistence registers all 16 adapters with backtest-kit 19.5.0 and says so", async () => {
  const lines = [];
  const h = usePersistence({ url: gw.url, namespace: "team-a", name: "store", token: "good-token", log: (l) => lines.push(l) });
  try {
    assert.equal(typeof bk.PersistDictionaryAdapter, "undefined", "the installed backtest-kit is 19.x");
    assert.deepEqual(h.registered, KINDS.map(([k]) => k).filter((k) => k !== "dictionary"));
    assert.equal(h.registered.length, 16);
    assert.deepEqual(h.unavailable, ["dictionary"]);
    assert.equal(lines.length, 1);
    assert.match(lines[0], /registered 16 persist adapters with backtest-kit: signal, .*, session$/);
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
    for (const [, Name] of KINDS) bk[`Persist${Name}Adapter`]?.useJson();
  }
});

test("backtest-kit 19.5.0's log and notification adapters write their largest lists over a 4 MiB payload limit", async () => {
  const h = usePersistence({ url: gw.url, namespace: "team-a", name: "store", token: "good-token" });
  try {
    assert.equal(gw.state.maxPayloadBytes, 4 << 20);
    const entries = Array.from({ length: 1000 }, (_, i) => ({ id: `bk-big-${i}`, type: "log", priority: i, args: ["a".repeat(5000)] }));
    const n = gw.state.requests.length;
    await bk.PersistLogAdapter.writeLogData(entries);
    const writes = gw.state.requests.slice(n).filter((r) => r.kind === "log" && r.op === "write");
    assert.ok(writes.length >= 5, `${writes.length} request(s) for about 5 MB`);
    const back = (await bk.PersistLogAdapter.readLogData()).filter((e) => e.id.startsWith("bk-big-"));
    assert.deepEqual(back, entries);
    const notes = Array.from({ length: 500 }, (_, i) => ({ id: `bk-note-${i}`, type: "info", createdAt: i, text: "b".repeat(20000) }));
    await bk.PersistNotificationAdapter.writeNotificationData(notes, true);
    const nb = (await bk.PersistNotificationAdapter.readNotificationData(true)).filter((x) => x.id.startsWith("bk-note-"));
    assert.deepEqual(nb, notes);
  } finally {
    h.close();
    for (const [, Name] of KINDS) bk[`Persist${Name}Adapter`]?.useJson();
  }
});

test("asking for dictionary by name with backtest-kit 19.5.0 is an error", () => {
  assert.throws(
    () => usePersistence({ url: gw.url, namespace: "team-a", name: "store", token: "good-token", kinds: ["dictionary"] }),
    /no PersistDictionaryAdapter\.usePersistDictionaryAdapter \(need backtest-kit >= 20\)/,
  );
});

test("useTimedFileAdapters registers the 16 file adapters of backtest-kit 19.5.0", () => {
  try {
    assert.equal(useTimedFileAdapters().registered.length, 16);
  } finally {
    for (const [, Name] of KINDS) bk[`Persist${Name}Adapter`]?.useJson();
  }
});

test("with a backtest-kit 20.x stand-in, usePersistence registers 17 and Dictionary goes to the gateway", async () => {
  const h = usePersistence({ url: gw.url, namespace: "team-a", name: "store", token: "good-token", backtestKit: standinKit });
  try {
    assert.deepEqual(h.registered, KINDS.map(([k]) => k));
    assert.deepEqual(h.unavailable, []);
    for (const [kind, Name] of KINDS) assert.equal(registeredCtors.get(Name), h.classes[kind], `${Name} registered`);
    const n = gw.state.requests.length;
    await PersistDictionaryAdapter.waitForInit("sig-20", "levels", true);
    assert.equal(await PersistDictionaryAdapter.readDictionaryData("sig-20", "levels"), null);
    const t1 = new Date(1767225600000);
    const t2 = new Date(1767225660000);
    await setDictionaryValue("sig-20", "levels", "tp", 52000.5, t1);
    const snap = await setDictionaryValue("sig-20", "levels", "sl.1", { at: [[49000, 1]] }, t2);
    assert.deepEqual(await PersistDictionaryAdapter.readDictionaryData("sig-20", "levels"), snap);
    assert.deepEqual(snap.data, { tp: { value: 52000.5, when: t1.getTime() }, "sl.1": { value: { at: [[49000, 1]] }, when: t2.getTime() } });
    assert.equal(await PersistDictionaryAdapter.readDictionaryData("sig-20", "other"), null);
    // dispose evicts the instance; the data stays, a new instance reads it
    PersistDictionaryAdapter.dispose("sig-20", "levels");
    assert.deepEqual(await PersistDictionaryAdapter.readDictionaryData("sig-20", "levels"), snap);
    const sent = gw.state.requests.slice(n).filter((r) => r.kind === "dictionary");
    const writes = sent.filter((r) => r.op === "write");
    assert.equal(writes.length, 2);
    assert.deepEqual(writes.map((w) => w.when), [t1.getTime(), t2.getTime()]);
    assert.deepEqual(writes[1].key, { signalId: "sig-20", dictionaryName: "levels" });
    assert.deepEqual(writes[1].value, snap, "each write carries the whole snapshot");
    assert.ok(PersistDictionaryAdapter.initCalls.includes(true));
    assert.equal(h.stats().kinds.dictionary.methods.writeDictionaryData.calls, 2);
  } finally {
    h.close();
    for (const [, Name] of KINDS) standinKit[`Persist${Name}Adapter`].useJson();
  }
});

test("splitListParts keeps every part's JSON under the budget and the order of items", () => {
  const enc = ["a", "bb", "ccc", "d".repeat(20), "e", "f"].map((x) => JSON.stringify({ id: x }));
  const parts = splitListParts(enc, 30);
  assert.deepEqual(parts.flat(), [0, 1, 2, 3, 4, 5]);
  for (const p of parts) {
    const bytes = Buffer.byteLength(`[${p.map((i) => enc[i]).join(",")}]`);
    assert.ok(bytes <= 30 || p.length === 1, `part ${p} is ${bytes} bytes`);
  }
  assert.ok(parts.some((p) => p.length === 1 && p[0] === 3), "an item over the budget is a part of its own");
  assert.deepEqual(splitListParts([], 10), []);
  // multi-byte characters count in UTF-8 bytes
  const wide = [JSON.stringify({ id: "ü".repeat(10) }), JSON.stringify({ id: "x" })];
  assert.deepEqual(splitListParts(wide, Buffer.byteLength(wide[0]) + 3), [[0], [1]]);
});

test("sendListInParts records only acknowledged parts; a failed middle part stops the write", async () => {
  const items = Array.from({ length: 6 }, (_, i) => ({ id: `i${i}`, pad: "x".repeat(40) }));
  const encoded = items.map((it) => [it.id, JSON.stringify(it)]);
  const recorded = [];
  const sentParts = [];
  let n = 0;
  const err = await sendListInParts({
    items,
    encoded,
    maxBytes: 130, // two items per part
    send: async (part) => {
      if (n++ === 1) throw Object.assign(new Error("mongo down"), { code: "Unavailable" });
      sentParts.push(part.map((x) => x.id));
    },
    record: (acked) => recorded.push(...acked.map(([id]) => id)),
  }).catch((e) => e);
  assert.equal(err.code, "Unavailable");
  assert.deepEqual(sentParts, [["i0", "i1"]], "nothing after the failed part is sent");
  assert.deepEqual(recorded, ["i0", "i1"]);
  // a part of one item refused as too large is skipped, reported, and the rest still sent
  const rejected = [];
  const acked = [];
  const err2 = await sendListInParts({
    items,
    encoded,
    maxBytes: 70, // one item per part
    send: async (part) => {
      if (part[0].id === "i2") throw Object.assign(new Error("too large"), { code: "TooLarge" });
    },
    record: (a) => acked.push(...a.map(([id]) => id)),
    rejected: (id) => rejected.push(id),
  }).catch((e) => e);
  assert.equal(err2.code, "TooLarge");
  assert.deepEqual(rejected, ["i2"]);
  assert.deepEqual(acked, ["i0", "i1", "i3", "i4", "i5"]);
});

test("a whole-list write over the payload limit is split; a failed part is resent by the next write", async () => {
  const stats = new Stats();
  const client = new GatewayClient({ url: gw.url, namespace: "team-a", name: "store", token: "good-token", retries: 0, stats });
  const A = createAdapterClasses({ client, stats, listPartBytes: 64 << 10 });
  gw.state.maxPayloadBytes = 256 << 10;
  try {
    const log = new A.log();
    const entries = Array.from({ length: 100 }, (_, i) => ({ id: `split-${i}`, priority: i, args: ["y".repeat(5000)] }));
    const n = gw.state.requests.length;
    // the third part fails (not retried): the first two are stored and recorded
    let writes = 0;
    gw.state.failIf = (r) => (r.kind === "log" && r.op === "write" && ++writes === 3 ? { status: 503, code: "Unavailable" } : null);
    const err = await log.writeLogData(entries).catch((e) => e);
    gw.state.failIf = null;
    assert.equal(err.code, "Unavailable");
    const first = gw.state.requests.slice(n).filter((r) => r.kind === "log" && r.op === "write");
    assert.equal(first.length, 3);
    const stored = () => new Set([...gw.state.lists.get(`log|[]`).keys()].filter((id) => id.startsWith("split-")));
    const acked = new Set(first.slice(0, 2).flatMap((r) => r.value.map((e) => e.id)));
    assert.deepEqual(stored(), acked);
    // the next write sends exactly what was not acknowledged, in parts under the budget
    const m = gw.state.requests.length;
    await log.writeLogData(entries);
    const second = gw.state.requests.slice(m).filter((r) => r.kind === "log" && r.op === "write");
    assert.ok(second.length >= 2);
    for (const r of second) assert.ok(Buffer.byteLength(JSON.stringify(r.value)) <= 64 << 10);
    const resent = second.flatMap((r) => r.value.map((e) => e.id));
    assert.deepEqual(new Set(resent), new Set(entries.map((e) => e.id).filter((id) => !acked.has(id))));
    assert.equal(stored().size, 100);
    const back = (await log.readLogData()).filter((e) => e.id.startsWith("split-"));
    assert.deepEqual(back, entries);
    // nothing is resent once everything is acknowledged
    const k = gw.state.requests.length;
    await log.writeLogData(entries);
    assert.equal(gw.state.requests.slice(k).filter((r) => r.kind === "log").length, 0);
  } finally {
    gw.state.maxPayloadBytes = 4 << 20;
    client.close();
  }
});

test("an item the store refuses as too large is reported once and does not block later writes", async () => {
  const stats = new Stats();
  const client = new GatewayClient({ url: gw.url, namespace: "team-a", name: "store", token: "good-token", stats });
  const A = createAdapterClasses({ client, stats, listPartBytes: 16 << 10 });
  gw.state.maxPayloadBytes = 32 << 10;
  try {
    const notes = new A.notification(false);
    const huge = { id: "huge-1", createdAt: 1, text: "z".repeat(40 << 10) };
    const small = (i) => ({ id: `ok-${i}`, createdAt: i, text: "ok" });
    const err = await notes.writeNotificationData([small(1), huge, small(2)]).catch((e) => e);
    assert.equal(err.code, "TooLarge");
    const ids = () => (gw.state.lists.get(`notification|${JSON.stringify([["backtest", false]])}`) ?? new Map()).keys();
    assert.deepEqual([...ids()].filter((id) => id.startsWith("ok-") || id === "huge-1").sort(), ["ok-1", "ok-2"]);
    await notes.writeNotificationData([small(1), huge, small(2), small(3)]);
    assert.deepEqual([...ids()].filter((id) => id.startsWith("ok-")).sort(), ["ok-1", "ok-2", "ok-3"]);
  } finally {
    gw.state.maxPayloadBytes = 4 << 20;
    client.close();
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
