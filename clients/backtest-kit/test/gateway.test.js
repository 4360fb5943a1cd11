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
