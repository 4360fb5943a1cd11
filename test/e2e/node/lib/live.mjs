// Drives a live (paper) run on the fake clock: starts the workers, then moves the
// clock minute by minute from `first` to `end`, each minute only after every
// symbol's tick of the previous one has finished (backtest-kit's live_tick metric).
import { realSleep } from "./clock.mjs";

/**
 * @param {object} bk backtest-kit
 * @param {{clock: {set(t:number):void}, symbols: string[], strategyName: string, exchangeName: string,
 *   first: number, end: number, afterMinute?: (m:number) => Promise<void>}} o
 * @returns {Promise<{ticks: number, missed: number}>} minutes ticked, minutes whose tick did not finish in 30 s
 */
export async function runLive(bk, { clock, symbols, strategyName, exchangeName, first, end, afterMinute }) {
  let ticks = 0;
  let missed = 0;
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
  for (let m = first; m < end; m += 60000) {
    clock.set(m + 1000);
    await waitTicks(m);
    await realSleep(15); // lets the worker return to its minute wait before the clock moves
    if (afterMinute) await afterMinute(m);
  }
  return { ticks, missed };
}
