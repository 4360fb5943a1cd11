// Writes issued together share batch requests (pure client logic, fake gateway).
import { test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { startFakeGateway } from "./fake-gateway.js";
import { GatewayClient, Stats, createAdapterClasses, PersistenceError } from "../src/index.js";

let gw;
before(async () => {
  gw = await startFakeGateway();
});
after(async () => {
  await gw.close();
});
beforeEach(() => {
  Object.assign(gw.state, { delayMs: 0, failOp: null, maxBatchOps: 500, maxBodyBytes: 8 << 20, batchSizes: [] });
  gw.state.failNext.length = 0;
});

const mk = (extra = {}) => {
  const stats = new Stats();
  const client = new GatewayClient({ url: gw.url, namespace: "team-a", name: "store", token: "good-token", retryBaseMs: 1, retryMaxMs: 5, stats, ...extra });
  return { client, stats };
};
const http = () => gw.state.http.ops + gw.state.http.batch;
const sig = (sym) => ({ symbol: sym, strategyName: "s", exchangeName: "e" });
const write = (client, sym, id) => client.op({ kind: "signal", op: "write", key: sig(sym), value: { id } });

test("concurrent writes go out in one batch per lane, each acknowledged and stored", async () => {
  for (const [batchWrites, lanes, want] of [[true, undefined, 14], [true, 4, 4], [true, 1, 1], [false, 4, 40]]) {
    const { client, stats } = mk({ batchWrites, batchLanes: lanes });
    const A = createAdapterClasses({ client, stats });
    const n = http();
    await Promise.all(Array.from({ length: 40 }, (_, i) => new A.signal(`C${lanes}${batchWrites}-${i}`, "s", "e").writeSignalData({ id: `v${i}` })));
    assert.equal(http() - n, want, `batchWrites=${batchWrites} lanes=${lanes}: HTTP requests for 40 writes`);
    for (let i = 0; i < 40; i += 13) assert.equal((await new A.signal(`C${lanes}${batchWrites}-${i}`, "s", "e").readSignalData()).id, `v${i}`);
    client.close();
  }
});

test("a lone write goes out at once as a single operation", async () => {
  const { client, stats } = mk();
  const n = gw.state.http.ops;
  await write(client, "LONE", "x");
  assert.equal(gw.state.http.ops - n, 1);
  assert.equal(stats.batches, 0);
  client.close();
});

test("writes issued while every lane is busy share the next batch", async () => {
  const { client, stats } = mk({ batchLanes: 1 });
  gw.state.delayMs = 30;
  const n = http();
  const first = write(client, "BUSY-0", "a");
  await new Promise((r) => setTimeout(r, 10)); // the first is in flight
  await Promise.all([first, ...Array.from({ length: 9 }, (_, i) => write(client, `BUSY-${i + 1}`, "b"))]);
  assert.equal(http() - n, 2, "one lone write, then one batch of the nine issued meanwhile");
  assert.deepEqual(gw.state.batchSizes, [9]);
  assert.equal(stats.batchedOps, 9);
  client.close();
});

test("writes of one key are never reordered nor acknowledged out of order", async () => {
  const { client } = mk({ batchLanes: 4 });
  let arrived = 0;
  gw.state.delayMs = () => Math.max(0, 40 - 10 * arrived++); // earlier requests answer later
  const acks = [];
  const n = gw.state.requests.length;
  const ps = [];
  for (let i = 1; i <= 6; i++) {
    ps.push(write(client, "ORDER", `v${i}`).then(() => acks.push(`v${i}`)));
    ps.push(write(client, `ORDER-other-${i}`, "o"));
  }
  await Promise.all(ps);
  assert.deepEqual(acks, ["v1", "v2", "v3", "v4", "v5", "v6"]);
  const landed = gw.state.requests.slice(n).filter((r) => r.key.symbol === "ORDER").map((r) => r.value.id);
  assert.deepEqual(landed, ["v1", "v2", "v3", "v4", "v5", "v6"], "the store saw the writes in issue order");
  const read = await client.op({ kind: "signal", op: "read", key: sig("ORDER") });
  assert.equal(read.value.id, "v6");
  client.close();
});

test("a slot error rejects only its write, with the error a single request would give", async () => {
  const { client } = mk({ batchLanes: 1 });
  gw.state.failOp = (op) => (op.key?.symbol === "SLOT-3" ? { code: "TooLarge", message: "key part over 512 bytes" } : null);
  const rs = await Promise.allSettled(Array.from({ length: 6 }, (_, i) => write(client, `SLOT-${i}`, "x")));
  assert.deepEqual(gw.state.batchSizes, [6]);
  assert.deepEqual(rs.map((r) => r.status), ["fulfilled", "fulfilled", "fulfilled", "rejected", "fulfilled", "fulfilled"]);
  const err = rs[3].reason;
  assert.ok(err instanceof PersistenceError);
  assert.equal(err.code, "TooLarge");
  assert.equal(err.status, 413);
  assert.match(err.message, /signal write on tenant team-a\/store failed: TooLarge \(HTTP 413\): key part over 512 bytes/);
  client.close();
});

test("a retryable slot error is retried alone", async () => {
  const { client, stats } = mk({ batchLanes: 1 });
  let failed = false;
  gw.state.failOp = (op) => {
    if (op.key?.symbol !== "RETRY-1" || failed) return null;
    failed = true;
    return { code: "Unavailable", message: "mongo down" };
  };
  await Promise.all(Array.from({ length: 4 }, (_, i) => write(client, `RETRY-${i}`, `r${i}`)));
  assert.equal(stats.retries, 1);
  assert.equal((await client.op({ kind: "signal", op: "read", key: sig("RETRY-1") })).value.id, "r1");
  client.close();
});

test("a batch refused as malformed is resent one write at a time", async () => {
  const { client } = mk({ batchLanes: 1 });
  const rs = await Promise.allSettled([
    write(client, "MAL-0", "a"),
    client.op({ kind: "nope", op: "write", key: {}, value: 1 }),
    write(client, "MAL-2", "c"),
  ]);
  assert.deepEqual(rs.map((r) => r.status), ["fulfilled", "rejected", "fulfilled"]);
  assert.equal(rs[1].reason.code, "InvalidRequest");
  assert.match(rs[1].reason.message, /nope write/);
  assert.equal((await client.op({ kind: "signal", op: "read", key: sig("MAL-2") })).value.id, "c");
  client.close();
});

test("a batch that fails as a whole fails each write with its own context", async () => {
  const { client } = mk({ batchLanes: 1, retries: 1 });
  for (let i = 0; i < 4; i++) gw.state.failNext.push({ status: 503, code: "Unavailable", message: "tenant not ready" });
  const rs = await Promise.allSettled([write(client, "WHOLE-0", "a"), client.op({ kind: "state", op: "write", key: { signalId: "x", bucketName: "b" }, value: {} })]);
  gw.state.failNext.length = 0;
  assert.equal(rs[0].reason.code, "Unavailable");
  assert.equal(rs[0].reason.status, 503);
  assert.equal(rs[0].reason.attempts, 2);
  assert.match(rs[0].reason.message, /^backtest-persistence: signal write on tenant team-a\/store failed after 2 attempts: Unavailable \(HTTP 503\): tenant not ready/);
  assert.match(rs[1].reason.message, /state write on tenant/);
  client.close();
});

test("batches respect the operation and body limits", async () => {
  gw.state.maxBatchOps = 3;
  gw.state.maxBodyBytes = 4096;
  const { client } = mk({ batchLanes: 2, batchMaxOps: 3, batchMaxBytes: 4096 });
  const big = "x".repeat(900);
  const rs = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => write(client, `LIM-${i}`, `${i}-${big}`)));
  assert.ok(rs.every((r) => r.status === "fulfilled"), String(rs.find((r) => r.status === "rejected")?.reason));
  assert.ok(gw.state.batchSizes.length >= 5, `batches ${gw.state.batchSizes}`);
  assert.ok(gw.state.batchSizes.every((n) => n <= 3), `batches ${gw.state.batchSizes}`);
  // An operation too large for any batch goes alone (and the gateway judges it alone).
  const huge = await write(client, "LIM-huge", "y".repeat(5000)).catch((e) => e);
  assert.equal(huge.code, "TooLarge");
  client.close();
});
