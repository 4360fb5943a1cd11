// Runs one scenario of the real-client benchmark on one backend and writes its outcome as JSON.
//
//   node run.mjs --scenario defaults|full|paper --backend file|mongo|operator --dir DIR --out FILE
//                [--tag T] [--symbols A,B] [--start ISO] [--days N] [--minutes N]
//
// Offline: the synthetic exchange, the strategy, the fake clock and the drivers of the
// whole-system scenarios (test/e2e/node/lib). An error that makes backtest-kit exit
// (listenExit) or an unhandled rejection ends the run as aborted, with the error.
import { mkdirSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { installFakeClock } from "../../e2e/node/lib/clock.mjs";
import { SCENARIOS } from "./scenarios.mjs";

const { values: a } = parseArgs({
  options: {
    scenario: { type: "string" },
    backend: { type: "string" },
    dir: { type: "string" },
    out: { type: "string" },
    tag: { type: "string", default: "bench" },
    symbols: { type: "string", default: "BTCUSDT" },
    start: { type: "string", default: "2025-03-01T00:00:00Z" },
    days: { type: "string", default: "1" },
    minutes: { type: "string", default: "300" },
  },
});
const scenario = SCENARIOS[a.scenario];
if (!scenario) throw new Error(`--scenario must be one of ${Object.keys(SCENARIOS).join(", ")}`);
if (!a.backend || !a.dir || !a.out) throw new Error("--backend, --dir and --out are required");
mkdirSync(a.dir, { recursive: true });
process.chdir(a.dir); // the file adapters (and the CLI's dumps) write relative to the working directory

const start = Date.parse(a.start);
// Only backtest-kit's own waits are accelerated: every backend's driver keeps real timers.
const clock = scenario.live ? installFakeClock(start + 1000, { frameworkTimersOnly: true }) : null;
const bk = await import("backtest-kit");
const client = await import("@backtest-persistence/backtest-kit");
const { useBackend } = await import("./backends.mjs");
const { syntheticExchange } = await import("../../e2e/node/lib/market.mjs");
const { registerStrategy } = await import("../../e2e/node/lib/strategy.mjs");
const { runBacktest } = await import("../../e2e/node/lib/backtest.mjs");
const { runLive } = await import("../../e2e/node/lib/live.mjs");
const { closedSignal } = await import("../../e2e/node/lib/outcome.mjs");

const names = { exchangeName: `synthetic-${a.tag}`, strategyName: `momentum-${a.tag}`, riskName: `risk-${a.tag}`, frameName: `frame-${a.tag}` };
const symbols = a.symbols.split(",");
const backend = await useBackend(a.backend, bk, client);
scenario.configure(bk);
const market = syntheticExchange(names.exchangeName);
bk.addExchangeSchema(market.schema);
registerStrategy(bk, { strategyName: names.strategyName, riskName: names.riskName, features: scenario.features });

const closed = [];
const opened = [];
const errors = [];
let t0 = performance.now();
const outcome = (extra) => ({
  scenario: a.scenario,
  backend: a.backend,
  symbols,
  opened,
  closed,
  errors,
  wallMs: performance.now() - t0,
  persistence: backend.stats(),
  exchangeCalls: market.counter.calls,
  ...extra,
});
const abort = (error) => {
  const message = String(error?.stack ?? error?.message ?? error);
  writeFileSync(a.out, JSON.stringify(outcome({ aborted: true, error: message }), null, 1));
  console.error(`${a.scenario}/${a.backend}: aborted: ${message}`);
  process.exit(3);
};
bk.listenError((e) => errors.push(String(e?.message ?? e)));
bk.listenExit(abort);
process.on("unhandledRejection", abort);

let ticks = 0;
let missed = 0;
t0 = performance.now();
if (!scenario.live) {
  bk.listenSignalBacktestClosed((e) => closed.push(closedSignal(e)));
  bk.listenSignalBacktestOpened((e) => opened.push(e.signal.id));
  await runBacktest(bk, { ...names, symbols, start, days: Number(a.days) });
} else {
  bk.listenSignalLiveClosed((e) => closed.push(closedSignal(e)));
  bk.listenSignalLiveOpened((e) => opened.push(e.signal.id));
  ({ ticks, missed } = await runLive(bk, { ...names, clock, symbols, first: start, end: start + Number(a.minutes) * 60000 }));
}
// Fire-and-forget list writes (storage, notifications, logs) are part of the run.
await backend.settle();
const result = outcome({ aborted: false, ticks, missedTicks: missed });
result.kindsTouched = Object.keys(result.persistence.kinds).sort();
writeFileSync(a.out, JSON.stringify(result, null, 1));
await backend.close();
const p = result.persistence;
console.log(
  `${a.scenario}/${a.backend}: ${closed.length} closed, wall ${(result.wallMs / 1000).toFixed(1)} s, persistence busy ${(p.busyMs / 1000).toFixed(2)} s in ${p.calls} calls, kinds ${result.kindsTouched.length}`,
);
process.exit(0);
