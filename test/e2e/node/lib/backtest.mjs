// Runs a 1m backtest of every symbol in the background and resolves when all are done.
export async function runBacktest(bk, { symbols, strategyName, exchangeName, frameName, start, days }) {
  bk.addFrameSchema({ frameName, interval: "1m", startDate: new Date(start), endDate: new Date(start + days * 86400000 - 60000) });
  const done = new Set();
  const finished = new Promise((resolve) => {
    bk.listenDoneBacktest((e) => {
      done.add(e.symbol);
      if (done.size === symbols.length) resolve();
    });
  });
  for (const symbol of symbols) bk.Backtest.background(symbol, { strategyName, exchangeName, frameName });
  await finished;
}
