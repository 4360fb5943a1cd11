// The strategy of the scenarios: a deterministic momentum rule on the synthetic
// market. Signal ids are derived from (symbol, time), so two runs produce
// comparable signal lists. With `features` (the live scenarios) it also uses the framework features
// that persist through the remaining adapters (Cache.file → Measure,
// Interval.file → Interval, session data → Session, signal state → State,
// memory → Memory, persisted log → Log).
// The framework is passed in, so a scenario and its strategy share one backtest-kit.
export function registerStrategy(bk, { strategyName, riskName, features }) {
  const { addStrategySchema, addRiskSchema, getCandles, Cache, Interval, setSessionData, getSessionData, setSignalState, writeMemory, Log } = bk;
  addRiskSchema({
    riskName,
    note: "allows everything; exists so positions persist through the Risk adapter",
    validations: [() => null],
  });

  const sma = Cache.file(
    async (symbol, n) => {
      const cs = await getCandles(symbol, "1m", n);
      return cs.reduce((a, c) => a + c.close, 0) / cs.length;
    },
    { interval: "15m", name: `sma-${strategyName}` },
  );
  const hourly = Interval.file(async (symbol) => ({ symbol, seen: true }), { interval: "1h", name: `hourly-${strategyName}` });

  addStrategySchema({
    strategyName,
    interval: "15m",
    riskName,
    getSignal: async (symbol, when, currentPrice) => {
      const mean = features ? await sma(symbol, 30) : (await getCandles(symbol, "1m", 30)).reduce((a, c) => a + c.close, 0) / 30;
      if (features) {
        await hourly(symbol);
        const session = (await getSessionData(symbol)) ?? { calls: 0 };
        await setSessionData(symbol, { calls: session.calls + 1, last: when.getTime() });
        Log.info("getSignal", { symbol, when: when.toISOString(), mean });
      }
      const dev = (currentPrice - mean) / mean;
      if (Math.abs(dev) < 0.0008) return null;
      const position = dev > 0 ? "long" : "short";
      const dir = position === "long" ? 1 : -1;
      // Every third quarter-hour a limit entry instead of a market one (exercises Schedule).
      const scheduled = Math.floor(when.getTime() / 900000) % 3 === 0;
      const priceOpen = scheduled ? currentPrice * (1 - dir * 0.0015) : currentPrice;
      return {
        id: `${strategyName}:${symbol}:${when.getTime()}`,
        position,
        note: scheduled ? "limit entry" : "market entry",
        priceOpen,
        priceTakeProfit: priceOpen * (1 + dir * 0.009),
        priceStopLoss: priceOpen * (1 - dir * 0.007),
        minuteEstimatedTime: 360,
      };
    },
    callbacks: features
      ? {
          onOpen: async (symbol, data) => {
            await writeMemory({ bucketName: "entries", memoryId: `open-${data.id}`, value: { priceOpen: data.priceOpen }, description: `entry ${symbol} ${data.position}` }).catch((e) => console.error("writeMemory", e.message));
          },
          onActivePing: async (symbol, data, currentPrice) => {
            await setSignalState(symbol, (s) => ({ ticks: s.ticks + 1, last: currentPrice }), { bucketName: "trade", initialValue: { ticks: 0, last: 0 } }).catch((e) => console.error("setSignalState", e.message));
          },
        }
      : undefined,
  });
}
