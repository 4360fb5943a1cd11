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
const { runBacktest } = await import("./lib/backtest.mjs");
const { runLive } = await import("./lib/live.mjs");
const { closedSignal } = await import("./lib/outcome.mjs");

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
registerStrategy(bk, { strategyName, riskName, features: full });

const closed = [];
const opened = [];
const errors = [];
bk.listenError((e) => errors.push(String(e?.message ?? e)));
const t0 = performance.now();
let ticks = 0;
let missed = 0;

if (!live) {
  bk.listenSignalBacktestClosed((e) => closed.push(closedSignal(e)));
  bk.listenSignalBacktestOpened((e) => opened.push(e.signal.id));
  await runBacktest(bk, { symbols, strategyName, exchangeName, frameName, start, days: Number(a.days) });
} else {
  bk.listenSignalLiveClosed((e) => closed.push(closedSignal(e)));
  bk.listenSignalLiveOpened((e) => opened.push(e.signal.id));
  const killAfter = a["kill-after-open"] !== undefined ? Number(a["kill-after-open"]) : null;
  let killAt = null;
  ({ ticks, missed } = await runLive(bk, {
    clock,
    symbols,
    strategyName,
    exchangeName,
    first,
    end: start + minutes * 60000,
    afterMinute: async (m) => {
      if (killAfter !== null && killAt === null && opened.length > 0) killAt = m + killAfter * 60000;
      if (killAt !== null && m >= killAt) {
        // A crash with an open position: flush nothing, tell the test where to resume, wait for SIGKILL.
        const pending = await bk.Live.getPendingSignal(symbols[0], 0, { strategyName, exchangeName }).catch(() => null);
        writeFileSync(a.out, JSON.stringify({ killedAt: m, resumeAt: m + 60000, pendingSignalId: pending?.id ?? null, opened, closed, errors }, null, 1));
        console.log(`KILL-ME ${m + 60000}`);
        await new Promise(() => {});
      }
    },
  }));
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
