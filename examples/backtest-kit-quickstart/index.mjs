// A one-day backtest whose persistence (candle cache, signal history, notifications)
// goes to a BacktestPersistence through the operator's gateway.
//
//   make run                      # in another terminal: the local stack prints the values below
//   export BACKTEST_PERSISTENCE_URL=http://127.0.0.1:9090
//   export BACKTEST_PERSISTENCE_NAMESPACE=backtest BACKTEST_PERSISTENCE_NAME=sample
//   export BACKTEST_PERSISTENCE_TOKEN_FILE=../../.local/token
//   npm install && npm start
//
// The market is synthetic (a seeded random walk), so the example needs no exchange account.
//
// When it is done it runs the same backtest again on backtest-kit's own file adapters,
// in a fresh directory on the disk of the system's temporary directory (where the local
// stack keeps its database), and prints the time both spent in persistence and their
// ratio. QUICKSTART_COMPARE=0 skips that second run.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  addExchangeSchema, addFrameSchema, addStrategySchema, getCandles, Backtest,
  listenDoneBacktest, listenSignalBacktestClosed, Storage, StorageBacktest, Notification, NotificationBacktest,
} from "backtest-kit";
import { usePersistence, useTimedFileAdapters } from "@backtest-persistence/backtest-kit";

// 1. Persistence: every adapter of the installed backtest-kit (16 with 19.x, 17 with 20.x) goes to
// the gateway (settings from BACKTEST_PERSISTENCE_*; the line logged names them), or, for the
// comparison run, to backtest-kit's file adapters (timed the same way).
const onFiles = process.env.QUICKSTART_ADAPTERS === "file";
const persistence = onFiles ? useTimedFileAdapters() : usePersistence({ log: console.log });
// As backtest-kit's project scaffold does: keep signal history and notifications too.
StorageBacktest.usePersist();
NotificationBacktest.usePersist();
Storage.enable();
Notification.enable();

// 2. A synthetic exchange: deterministic 1-minute closes (overlapping waves plus noise), aggregated per interval.
const STEP = { "1m": 1, "3m": 3, "5m": 5, "15m": 15, "30m": 30, "1h": 60 };
const noise = (m) => { const x = Math.sin(m * 12.9898) * 43758.5453; return x - Math.floor(x); };
const close = (m) => 100 * Math.exp(0.03 * Math.sin(m / 97) + 0.012 * Math.sin(m / 13) + 0.004 * noise(m));
addExchangeSchema({
  exchangeName: "synthetic",
  getCandles: async (_symbol, interval, since, limit) => {
    const step = STEP[interval] ?? 1;
    const first = Math.ceil(since.getTime() / 60000 / step) * step;
    return Array.from({ length: limit }, (_, i) => {
      const m0 = first + i * step;
      const cs = Array.from({ length: step }, (_, k) => close(m0 + k));
      const open = close(m0 - 1);
      return { timestamp: m0 * 60000, open, high: Math.max(open, ...cs), low: Math.min(open, ...cs), close: cs.at(-1), volume: 100 };
    });
  },
  formatPrice: async (_s, p) => p.toFixed(4),
  formatQuantity: async (_s, q) => q.toFixed(6),
});

// 3. A strategy: follow the 30-minute momentum, 1% take profit, 0.7% stop loss.
addStrategySchema({
  strategyName: "quickstart-momentum",
  interval: "15m",
  getSignal: async (symbol, when, currentPrice) => {
    const candles = await getCandles(symbol, "1m", 30);
    const mean = candles.reduce((a, c) => a + c.close, 0) / candles.length;
    if (Math.abs(currentPrice - mean) / mean < 0.001) return null;
    const dir = currentPrice > mean ? 1 : -1;
    return {
      position: dir > 0 ? "long" : "short",
      priceTakeProfit: currentPrice * (1 + dir * 0.01),
      priceStopLoss: currentPrice * (1 - dir * 0.007),
      minuteEstimatedTime: 240,
    };
  },
});
addFrameSchema({ frameName: "one-day", interval: "1m", startDate: new Date("2025-03-01T00:00:00Z"), endDate: new Date("2025-03-01T23:59:00Z") });

let closed = 0;
listenSignalBacktestClosed((e) => {
  closed++;
  if (!onFiles) console.log(`${e.signal.position.padEnd(5)} ${e.closeReason.padEnd(12)} pnl ${e.pnl.pnlPercentage.toFixed(2)}%`);
});

// The same backtest on backtest-kit's file adapters, in a child process of its own.
function runOnFiles() {
  const dir = mkdtempSync(join(tmpdir(), "quickstart-files-"));
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [fileURLToPath(import.meta.url)], {
      cwd: dir, env: { ...process.env, QUICKSTART_ADAPTERS: "file" }, stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.on("error", reject);
    child.on("exit", (code) => {
      rmSync(dir, { recursive: true, force: true });
      const line = out.split("\n").find((l) => l.startsWith("QUICKSTART_RESULT "));
      if (code !== 0 || !line) reject(new Error(`the file-adapter run failed (exit ${code})`));
      else resolve(JSON.parse(line.slice("QUICKSTART_RESULT ".length)));
    });
  });
}

listenDoneBacktest(async () => {
  if (!onFiles) await persistence.flush();
  const s = persistence.stats();
  if (onFiles) {
    console.log(`QUICKSTART_RESULT ${JSON.stringify({ busyMs: s.busyMs, calls: s.calls, closed })}`);
    process.exit(0);
  }
  console.log(`\npersistence: ${s.calls} calls, ${s.busyMs.toFixed(0)} ms busy; per kind:`);
  for (const [kind, k] of Object.entries(s.kinds)) console.log(`  ${kind.padEnd(13)} ${String(k.calls).padStart(6)} calls ${k.ms.toFixed(0).padStart(7)} ms`);
  console.log(`  (${s.requests} HTTP requests, ${s.batches.ops} writes sent together in ${s.batches.requests} batches)`);
  const rows = await Storage.listSignalBacktest();
  console.log(`signal history in the store: ${rows.length} rows`);
  persistence.close();
  if (process.env.QUICKSTART_COMPARE !== "0") {
    console.log("\nthe same backtest on backtest-kit's file adapters ...");
    const f = await runOnFiles();
    const gw = s.busyMs / 1000;
    const files = f.busyMs / 1000;
    console.log(`busy in persistence: ${gw.toFixed(2)} s on the gateway, ${files.toFixed(2)} s on the file adapters ` +
      `(${f.calls} calls) in ${tmpdir()}; file adapters / gateway = ${(files / gw).toFixed(2)}`);
    if (f.closed !== closed) console.log(`closed signals differ: ${closed} on the gateway, ${f.closed} on the file adapters`);
  }
  process.exit(0);
});
Backtest.background("BTCUSDT", { strategyName: "quickstart-momentum", exchangeName: "synthetic", frameName: "one-day" });
