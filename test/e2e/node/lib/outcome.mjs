// What a scenario reports of a closed signal: enough to compare two runs exactly.
export const closedSignal = (e) => ({
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
