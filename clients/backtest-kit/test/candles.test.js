// The candle cache holds what the store holds (pure client logic, fake gateway).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startFakeGateway } from "./fake-gateway.js";
import { GatewayClient, Stats, createAdapterClasses } from "../src/index.js";

let gw;
before(async () => {
  gw = await startFakeGateway();
});
after(async () => {
  await gw.close();
});

const mk = (extra = {}) => {
  const stats = new Stats();
  const client = new GatewayClient({ url: gw.url, namespace: "team-a", name: "store", token: "good-token", stats });
  return { client, stats, A: createAdapterClasses({ client, stats, ...extra }) };
};
const T0 = 1767225600000;
const candle = (ts, close) => ({ timestamp: ts, open: 1, high: 2, low: 0.5, close, volume: 1 });

test("a write caches the stored version of a candle: the first written wins", async () => {
  const other = mk();
  await new other.A.candle("FIRST", "1m", "e").writeCandlesData([candle(T0, 1)]);
  const { A, client } = mk();
  const c = new A.candle("FIRST", "1m", "e");
  await c.writeCandlesData([candle(T0, 2), candle(T0 + 60000, 2)]);
  const n = gw.state.requests.length;
  const w = await c.readCandlesData(2, T0, T0 + 120000);
  assert.equal(gw.state.requests.length, n, "served from the cache the write filled");
  assert.deepEqual(w.map((x) => x.close), [1, 2], "the stored (first-written) version, not the one this process sent");
  client.close();
  other.client.close();
});

test("a candle the gateway skipped as not closed by its clock is not cached", async () => {
  const saved = gw.state.now;
  gw.state.now = () => T0 + 90000; // the gateway's clock: the candle at T0+60000 closes at T0+120000
  const { A, client } = mk({ now: () => T0 + 3600000 }); // this process's clock runs ahead
  try {
    const c = new A.candle("SKEW", "1m", "e");
    await c.writeCandlesData([candle(T0, 1), candle(T0 + 60000, 1)]);
    assert.deepEqual((await c.readCandlesData(1, T0, T0 + 60000)).map((x) => x.timestamp), [T0]);
    const n = gw.state.requests.length;
    assert.equal(await c.readCandlesData(2, T0, T0 + 120000), null, "the unclosed candle is not known");
    assert.equal(gw.state.requests.length, n + 1, "asked the gateway");
  } finally {
    gw.state.now = saved;
    client.close();
  }
});

test("an older gateway answering a candle write with {} teaches the cache nothing", async () => {
  gw.state.legacyCandleWrites = true;
  const { A, client } = mk();
  try {
    const c = new A.candle("LEGACY", "1m", "e");
    await c.writeCandlesData([candle(T0, 1)]);
    const n = gw.state.requests.length;
    assert.deepEqual((await c.readCandlesData(1, T0, T0 + 60000)).map((x) => x.close), [1]);
    assert.equal(gw.state.requests.length, n + 1, "the window came from the gateway");
    await c.readCandlesData(1, T0, T0 + 60000);
    assert.equal(gw.state.requests.length, n + 1, "and is cached from the read");
  } finally {
    gw.state.legacyCandleWrites = false;
    client.close();
  }
});
