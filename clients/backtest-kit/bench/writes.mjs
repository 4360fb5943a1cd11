// Benchmark: N concurrent writes, with the batcher off and on, in one run.
//
//   node bench/writes.mjs [--n 40] [--rounds 30] [--fake]
//
// Against a real gateway when BACKTEST_PERSISTENCE_TEST_URL, _NAMESPACE, _NAME and
// _TOKEN (or _TOKEN_FILE) are set (as for test/gateway.test.js); against the
// in-memory fake gateway otherwise (or with --fake), which counts round trips but
// says nothing about the server's cost. Each round issues N writes at once (distinct
// keys, one signal-sized row each, the way backtest-kit's ticks write) and waits for
// all of them; the configurations take turns round by round so machine drift hits
// all alike. Prints HTTP requests per round and the median and p90 round time, with
// ratios to "off".
import { randomBytes } from "node:crypto";
import { GatewayClient, Stats } from "../src/index.js";
import { startFakeGateway } from "../test/fake-gateway.js";

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const N = Number(arg("n", 40));
const ROUNDS = Number(arg("rounds", 30));
const env = process.env;
const P = "BACKTEST_PERSISTENCE_TEST_";
const useFake = process.argv.includes("--fake") || !env[`${P}URL`];

let fake;
let target;
if (useFake) {
  fake = await startFakeGateway();
  target = { url: fake.url, namespace: "team-a", name: "store", token: "good-token" };
} else {
  target = { url: env[`${P}URL`], namespace: env[`${P}NAMESPACE`], name: env[`${P}NAME`], token: env[`${P}TOKEN`], tokenFile: env[`${P}TOKEN_FILE`], caFile: env[`${P}CA_FILE`] };
}

const CONFIGS = [
  { label: "off", batchWrites: false },
  { label: "on, 1 lane", batchLanes: 1 },
  { label: "on, 4 lanes", batchLanes: 4 },
  { label: "on, 8 lanes", batchLanes: 8 },
  { label: "on, 16 lanes (default)", batchLanes: 16 },
];
const run = randomBytes(3).toString("hex");
const row = (i) => ({
  id: `sig-${i}`, position: "long", priceOpen: 100 + i, priceTakeProfit: 101, priceStopLoss: 99, minuteEstimatedTime: 240,
  symbol: "BTCUSDT", strategyName: "bench", exchangeName: "bench", note: "x".repeat(300),
});
const states = CONFIGS.map((c, ci) => {
  const stats = new Stats();
  const client = new GatewayClient({ ...target, ...c, stats });
  const keys = Array.from({ length: N }, (_, i) => ({ symbol: `B${run}-${ci}-${i}`, strategyName: "bench", exchangeName: "bench" }));
  return { c, stats, client, keys, times: [], requests: 0 };
});

const round = async (s, r) => {
  const before = s.stats.requests;
  const t = performance.now();
  await Promise.all(s.keys.map((key, i) => s.client.op({ kind: "signal", op: "write", key, value: { ...row(i), round: r } })));
  s.times.push(performance.now() - t);
  s.requests += s.stats.requests - before;
};
for (const s of states) await round(s, -1); // warm-up: connections, tokens
for (const s of states) (s.times = []), (s.requests = 0);
for (let r = 0; r < ROUNDS; r++) for (const s of states) await round(s, r);

const q = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))];
const base = states[0];
console.log(`${N} concurrent writes x ${ROUNDS} rounds against ${useFake ? "the fake gateway" : target.url}`);
console.log(`${"batching".padEnd(24)} ${"HTTP req/round".padStart(15)} ${"median ms".padStart(10)} ${"p90 ms".padStart(8)} ${"writes/s".padStart(9)} ${"req ratio".padStart(10)} ${"time ratio".padStart(11)}`);
for (const s of states) {
  const med = q(s.times, 0.5);
  const total = s.times.reduce((a, b) => a + b, 0);
  console.log(
    `${s.c.label.padEnd(24)} ${(s.requests / ROUNDS).toFixed(1).padStart(15)} ${med.toFixed(1).padStart(10)} ${q(s.times, 0.9).toFixed(1).padStart(8)} ` +
      `${((N * ROUNDS) / (total / 1000)).toFixed(0).padStart(9)} ${(s.requests / base.requests).toFixed(3).padStart(10)} ${(med / q(base.times, 0.5)).toFixed(3).padStart(11)}`,
  );
  s.client.close();
}
if (fake) await fake.close();
