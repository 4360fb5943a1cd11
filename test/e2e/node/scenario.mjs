// Runs one backtest-kit scenario offline and writes its outcome as JSON.
//
//   node scenario.mjs --mode backtest|live --adapter store|file --dir DIR --out FILE [options]
//
// store: the gateway named by BACKTEST_PERSISTENCE_URL/_NAMESPACE/_NAME/_TOKEN(_FILE)/_CA_FILE;
// file:  backtest-kit's own JSON file adapters under DIR/dump. Both are timed the same way.
// Options: --tag T (suffix of strategy/exchange names), --symbols A,B, --start ISO,
// --days N (backtest), --minutes N (live), --kill-after-open M (live: print KILL-ME
// M minutes after the first open and wait to be killed), --resume-at MS (live: the
// restarted worker's first minute), --profile full (backtest: also Log, Recent, State,
// Memory and Session persisted, and the strategy using them, as live does).
import { mkdirSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { installFakeClock, realSleep } from "./lib/clock.mjs";

const { values: a } = parseArgs({
  options: {
    mode: { type: "string", default: "backtest" },
    adapter: { type: "string", default: "file" },
    dir: { type: "string" },
    out: { type: "string" },
    tag: { type: "string", default: "e2e" },
    symbols: { type: "string" },
    start: { type: "string", default: "2025-03-01T00:00:00Z" },
    days: { type: "string", default: "3" },
    minutes: { type: "string", default: "360" },
    "kill-after-open": { type: "string" },
    "resume-at": { type: "string" },
    profile: { type: "string", default: "scaffold" },
  },
});
if (!a.dir || !a.out) throw new Error("--dir and --out are required");
mkdirSync(a.dir, { recursive: true });
process.chdir(a.dir); // the file adapters write ./dump relative to the working directory

const live = a.mode === "live";
if (!["scaffold", "full"].includes(a.profile)) throw new Error(`--profile must be scaffold or full, not ${a.profile}`);
const full = live || a.profile === "full";
const start = Date.parse(a.start);
const minutes = Number(a.minutes);
const first = a["resume-at"] ? Number(a["resume-at"]) : start;
const clock = live ? installFakeClock(first + 1000) : null;

const bk = await import("backtest-kit");
const client = await import("@backtest-persistence/backtest-kit");
const { syntheticExchange } = await import("./lib/market.mjs");
const { registerStrategy } = await import("./lib/strategy.mjs");

const exchangeName = `synthetic-${a.tag}`;
const strategyName = `momentum-${a.tag}`;
const riskName = `risk-${a.tag}`;
const frameName = `frame-${a.tag}`;
const symbols = (a.symbols ?? (live ? "BTCUSDT" : "BTCUSDT,ETHUSDT")).split(",");

// Persistence: the scaffold's configuration (Storage and Notification persisted in both modes).
const handle =
  a.adapter === "store"
    ? client.usePersistence({ timeoutMs: 20000 })
    : a.adapter === "file"
      ? client.useTimedFileAdapters()
      : (() => {
          throw new Error(`--adapter must be store or file, not ${a.adapter}`);
        })();
bk.StorageBacktest.usePersist();
bk.StorageLive.usePersist();
bk.NotificationBacktest.usePersist();
bk.NotificationLive.usePersist();
bk.Storage.enable();
bk.Notification.enable();
if (full) {
  bk.Log.usePersist();
  bk.Recent.enable();
  bk.Memory.enable();
  bk.State.enable();
}
if (full && !live) {
  bk.RecentBacktest.usePersist();
  bk.StateBacktest.usePersist();
  bk.SessionBacktest.usePersist();
  bk.MemoryBacktest.usePersist();
}

const market = syntheticExchange(exchangeName);
bk.addExchangeSchema(market.schema);
registerStrategy({ strategyName, riskName, live: full });

const closed = [];
const opened = [];
const errors = [];
const pick = (e) => ({
  id: e.signal.id,
  symbol: e.symbol,
  position: e.signal.position,
  priceOpen: e.signal.priceOpen,
  priceTakeProfit: e.signal.priceTakeProfit,
  priceStopLoss: e.signal.priceStopLoss,
  priceClose: e.currentPrice,
  pnlPercentage: e.pnl.pnlPercentage,
  closeReason: e.closeReason,
  closeTimestamp: e.closeTimestamp,
});
bk.listenError((e) => errors.push(String(e?.message ?? e)));
const t0 = performance.now();
let ticks = 0;
let missed = 0;

if (!live) {
  bk.listenSignalBacktestClosed((e) => closed.push(pick(e)));
  bk.listenSignalBacktestOpened((e) => opened.push(e.signal.id));
  bk.addFrameSchema({ frameName, interval: "1m", startDate: new Date(start), endDate: new Date(start + Number(a.days) * 86400000 - 60000) });
  const done = new Set();
  const finished = new Promise((resolve) => {
    bk.listenDoneBacktest((e) => {
      done.add(e.symbol);
      if (done.size === symbols.length) resolve();
    });
  });
  for (const symbol of symbols) bk.Backtest.background(symbol, { strategyName, exchangeName, frameName });
  await finished;
} else {
  bk.listenSignalLiveClosed((e) => closed.push(pick(e)));
  bk.listenSignalLiveOpened((e) => opened.push(e.signal.id));
  const tickDone = new Map(); // minute → symbols ticked
  let notify = null;
  bk.listenPerformance((e) => {
    if (e.metricType !== "live_tick") return;
    const m = e.when.getTime();
    const s = tickDone.get(m) ?? new Set();
    s.add(e.symbol);
    tickDone.set(m, s);
    if (notify) notify();
  });
  const waitTicks = async (m) => {
    const deadline = performance.now() + 30000;
    while ((tickDone.get(m)?.size ?? 0) < symbols.length) {
      if (performance.now() > deadline) {
        missed++;
        return;
      }
      await new Promise((r) => {
        notify = r;
        realSleep(50).then(r);
      });
    }
    ticks++;
    tickDone.delete(m);
  };
  for (const symbol of symbols) bk.Live.background(symbol, { strategyName, exchangeName });
  const end = start + minutes * 60000;
  const killAfter = a["kill-after-open"] !== undefined ? Number(a["kill-after-open"]) : null;
  let killAt = null;
  for (let m = first; m < end; m += 60000) {
    clock.set(m + 1000);
    await waitTicks(m);
    await realSleep(15); // lets the worker return to its minute wait before the clock moves
    if (killAfter !== null && killAt === null && opened.length > 0) killAt = m + killAfter * 60000;
    if (killAt !== null && m >= killAt) {
      // A crash with an open position: flush nothing, tell the test where to resume, wait for SIGKILL.
      const pending = await bk.Live.getPendingSignal(symbols[0], 0, { strategyName, exchangeName }).catch(() => null);
      writeFileSync(a.out, JSON.stringify({ killedAt: m, resumeAt: m + 60000, pendingSignalId: pending?.id ?? null, opened, closed, errors }, null, 1));
      console.log(`KILL-ME ${m + 60000}`);
      await new Promise(() => {});
    }
  }
}

// Let fire-and-forget list writes (storage, notifications, logs) finish before reporting.
if (handle.flush) await handle.flush();
else await realSleep(200);
const wallMs = performance.now() - t0;
const persistence = handle.stats();
const result = {
  mode: a.mode,
  adapter: a.adapter,
  symbols,
  opened,
  closed,
  ticks,
  missedTicks: missed,
  errors,
  wallMs,
  persistence,
  exchangeCalls: market.counter.calls,
  kindsTouched: Object.keys(persistence.kinds).sort(),
};
writeFileSync(a.out, JSON.stringify(result, null, 1));
const fmt = (x) => x.toFixed(1);
console.log(
  `${a.mode}/${a.adapter}: ${closed.length} closed, ${opened.length} opened, wall ${fmt(wallMs)} ms, persistence ${fmt(persistence.ms)} ms in ${persistence.calls} calls, kinds ${result.kindsTouched.length}`,
);
process.exit(0);
