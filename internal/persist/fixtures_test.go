package persist

// Payload fixtures in the shapes of contract section 3 (values illustrative).

const fxSignal = `{"id":"7f1c2a9e-0000-4000-8000-000000000001","symbol":"BTCUSDT","position":"long","note":"rsi","priceOpen":50000,"priceTakeProfit":52000,"priceStopLoss":49000,"minuteEstimatedTime":null,"cost":100,"exchangeName":"binance","strategyName":"s1","frameName":"","scheduledAt":1767225600000,"pendingAt":1767225600000,"timestamp":1767225600000,"_isScheduled":false,"_entry":[{"price":50000,"cost":100,"timestamp":1767225600000}],"_partial":[{"type":"profit","percent":10,"currentPrice":50500.25,"costBasisAtClose":10.5,"entryCountAtClose":1,"timestamp":1767225660000}],"_peak":{"price":50000,"timestamp":1767225600000,"pnlPercentage":0,"priceOpen":50050,"priceClose":49950,"pnlCost":0,"pnlEntries":100},"_fall":{"price":49999.99,"timestamp":1767225600000,"pnlPercentage":-0.0123,"priceOpen":50050,"priceClose":49950,"pnlCost":-0.01,"pnlEntries":100}}`

const fxStrategy = `{"pendingSignalId":"7f1c","lastPendingId":null,"createdSignal":null,"commitQueue":[{"action":"partial-profit","symbol":"BTCUSDT","backtest":false,"percentToClose":25,"currentPrice":51000}],"closedSignal":null,"cancelledSignal":null,"activatedSignal":null,"takeProfitSignal":null,"stopLossSignal":null,"retryOpenSignal":null,"retryOpenCount":0,"retryCloseCount":2,"isPaused":false}`

const fxRisk = `[["s1_binance_BTCUSDT",{"strategyName":"s1","exchangeName":"binance","frameName":"","symbol":"BTCUSDT","position":"long","priceOpen":50000,"priceStopLoss":49000,"priceTakeProfit":52000,"minuteEstimatedTime":1440,"openTimestamp":1767225600000}],["s2_binance_ETHUSDT",{"strategyName":"s2","exchangeName":"binance","frameName":"","symbol":"ETHUSDT","position":"short","priceOpen":3000.5,"priceStopLoss":3100,"priceTakeProfit":2900,"minuteEstimatedTime":null,"openTimestamp":1767225660000}]]`

const fxPartial = `{"7f1c2a9e":{"profitLevels":[10,20],"lossLevels":[]}}`

const fxBreakeven = `{"7f1c2a9e":{"reached":true}}`

const fxMeasure = `{"id":"BTCUSDT_1767225600000","data":{"rsi":31.25,"levels":[[1,2],[3,4]],"0.5":"dotted","$ref":"dollar","ключ":"юникод"},"removed":false}`

const fxInterval = `{"id":"BTCUSDT_1767225600000","data":{"fired":true},"when":"2026-01-01T00:00:00.000Z","removed":false}`

const fxMemory = `{"priority":1767225600123,"data":{"text":"support at 49k","tags":["btc","support"]},"removed":false,"index":"support 49k btc","when":1767225600000}`

const fxRecent = `{"id":"7f1c","symbol":"BTCUSDT","position":"long","priceOpen":50000,"priceTakeProfit":52000,"priceStopLoss":49000,"minuteEstimatedTime":null,"cost":100,"exchangeName":"binance","strategyName":"s1","frameName":"f1","scheduledAt":1767225600000,"pendingAt":1767225600000,"timestamp":1767225600000,"_isScheduled":false,"originalPriceStopLoss":49000,"originalPriceTakeProfit":52000,"originalPriceOpen":50000,"partialExecuted":25,"totalEntries":1,"totalPartials":1,"pnl":{"pnlPercentage":1.5,"priceOpen":50000,"priceClose":50750,"pnlCost":1.5,"pnlEntries":100}}`

const fxState = `{"id":"7f1c_bucket","data":{"counter":3,"nested":{"a":[1,2,3]}},"when":1767225600000}`

// fxDictionary is backtest-kit 20.x's dictionary snapshot: user keys (here with "." and
// "$"), each with its value and logical time.
const fxDictionary = `{"id":"7f1c_prices","data":{"BTC.USDT":{"value":{"$avg":50000.5,"pairs":[[1,2],[3,4]]},"when":1767225600000},"empty":{"value":null,"when":1767225600000}},"when":1767225600000}`

const fxSession = `{"id":"BTCUSDT:s1:binance:backtest","data":null,"when":1767225600000}`

// fxStorageRow returns a storage row with a given id and priority.
func fxStorageRow(id string, priority int64, status string) map[string]any {
	return map[string]any{"id": id, "symbol": "BTCUSDT", "position": "long", "priceOpen": 50000.5,
		"priceTakeProfit": 52000, "priceStopLoss": 49000, "minuteEstimatedTime": nil, "status": status,
		"createdAt": 1767225600000, "updatedAt": 1767225600000 + priority, "priority": priority,
		"currentPrice": 50100.25, "exchangeName": "binance", "strategyName": "s1", "frameName": ""}
}

// fxNotification returns a notification; errorType ones carry no createdAt (contract 3.7).
func fxNotification(id string, errorType bool) map[string]any {
	if errorType {
		return map[string]any{"id": id, "type": "error.info", "error": map[string]any{"message": "boom"}, "message": "boom", "backtest": true}
	}
	return map[string]any{"id": id, "type": "signal.opened", "backtest": true, "timestamp": 1767225600000,
		"createdAt": 1767225600000, "symbol": "BTCUSDT", "strategyName": "s1", "exchangeName": "binance", "signalId": "7f1c", "priceOpen": 50000}
}

// fxLogEntry returns a log line.
func fxLogEntry(id string, priority int64) map[string]any {
	return map[string]any{"id": id, "type": "info", "priority": priority, "createdAt": "2026-01-01T00:00:00.000Z",
		"timestamp": 1767225600000, "methodContext": nil, "executionContext": map[string]any{"backtest": true},
		"topic": "tick", "args": []any{"price", 50000.5, []any{1, 2}}}
}
