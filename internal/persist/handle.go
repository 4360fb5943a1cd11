package persist

import (
	"context"
	"encoding/json"
)

// Handle is one key of one kind: a thin typed front of Do for Go callers, e.g.
// s.Signal("BTCUSDT", "s1", "binance").Read(ctx). Values are JSON, as in Request.
type Handle struct {
	s    *Store
	kind Kind
	key  map[string]any
}

// On returns a handle for any kind and key (the key fields of the table of kinds).
func (s *Store) On(kind Kind, key map[string]any) Handle { return Handle{s: s, kind: kind, key: key} }

// Signal is the pending signal of (symbol, strategy, exchange).
func (s *Store) Signal(symbol, strategyName, exchangeName string) Handle {
	return s.On(KindSignal, map[string]any{"symbol": symbol, "strategyName": strategyName, "exchangeName": exchangeName})
}

// Schedule is the scheduled signal of (symbol, strategy, exchange).
func (s *Store) Schedule(symbol, strategyName, exchangeName string) Handle {
	return s.On(KindSchedule, map[string]any{"symbol": symbol, "strategyName": strategyName, "exchangeName": exchangeName})
}

// Strategy is the strategy state snapshot of (symbol, strategy, exchange).
func (s *Store) Strategy(symbol, strategyName, exchangeName string) Handle {
	return s.On(KindStrategy, map[string]any{"symbol": symbol, "strategyName": strategyName, "exchangeName": exchangeName})
}

// Risk is the position list of a risk profile on an exchange.
func (s *Store) Risk(riskName, exchangeName string) Handle {
	return s.On(KindRisk, map[string]any{"riskName": riskName, "exchangeName": exchangeName})
}

// Partial is the partial levels record of one signal.
func (s *Store) Partial(symbol, strategyName, exchangeName, signalID string) Handle {
	return s.On(KindPartial, map[string]any{"symbol": symbol, "strategyName": strategyName, "exchangeName": exchangeName, "signalId": signalID})
}

// Breakeven is the breakeven record of one signal.
func (s *Store) Breakeven(symbol, strategyName, exchangeName, signalID string) Handle {
	return s.On(KindBreakeven, map[string]any{"symbol": symbol, "strategyName": strategyName, "exchangeName": exchangeName, "signalId": signalID})
}

// Candles is the candle series of (exchange, symbol, interval); read with Window.
func (s *Store) Candles(exchangeName, symbol, interval string) Handle {
	return s.On(KindCandle, map[string]any{"exchangeName": exchangeName, "symbol": symbol, "interval": interval})
}

// StorageList is the signal history of one mode.
func (s *Store) StorageList(backtest bool) Handle {
	return s.On(KindStorage, map[string]any{"backtest": backtest})
}

// Notifications is the notification feed of one mode.
func (s *Store) Notifications(backtest bool) Handle {
	return s.On(KindNotification, map[string]any{"backtest": backtest})
}

// Log is the global log list.
func (s *Store) Log() Handle { return s.On(KindLog, map[string]any{}) }

// Measure is one entry of a Cache.file bucket; Bucket(KindMeasure, b).List lists them.
func (s *Store) Measure(bucket, key string) Handle {
	return s.On(KindMeasure, map[string]any{"bucket": bucket, "key": key})
}

// Interval is one entry of an Interval.file bucket.
func (s *Store) Interval(bucket, key string) Handle {
	return s.On(KindInterval, map[string]any{"bucket": bucket, "key": key})
}

// Bucket addresses a Measure or Interval bucket as a whole (for List).
func (s *Store) Bucket(kind Kind, bucket string) Handle {
	return s.On(kind, map[string]any{"bucket": bucket})
}

// Memory is one memory entry; MemoryBucket(...).List lists a bucket's entries.
func (s *Store) Memory(signalID, bucketName, memoryID string) Handle {
	return s.On(KindMemory, map[string]any{"signalId": signalID, "bucketName": bucketName, "memoryId": memoryID})
}

// MemoryBucket addresses the memory entries of (signal, bucket) as a whole.
func (s *Store) MemoryBucket(signalID, bucketName string) Handle {
	return s.On(KindMemory, map[string]any{"signalId": signalID, "bucketName": bucketName})
}

// Recent is the latest public signal of (symbol, strategy, exchange, frame, mode).
func (s *Store) Recent(symbol, strategyName, exchangeName, frameName string, backtest bool) Handle {
	return s.On(KindRecent, map[string]any{"symbol": symbol, "strategyName": strategyName, "exchangeName": exchangeName,
		"frameName": frameName, "backtest": backtest})
}

// State is the user state of (signal, bucket).
func (s *Store) State(signalID, bucketName string) Handle {
	return s.On(KindState, map[string]any{"signalId": signalID, "bucketName": bucketName})
}

// Dictionary is the dictionary snapshot of (signal, dictionary) (backtest-kit 20.x).
func (s *Store) Dictionary(signalID, dictionaryName string) Handle {
	return s.On(KindDictionary, map[string]any{"signalId": signalID, "dictionaryName": dictionaryName})
}

// Session is the session blob of (strategy, exchange, frame, symbol, mode).
func (s *Store) Session(strategyName, exchangeName, frameName, symbol string, backtest bool) Handle {
	return s.On(KindSession, map[string]any{"strategyName": strategyName, "exchangeName": exchangeName,
		"frameName": frameName, "symbol": symbol, "backtest": backtest})
}

// Read returns the stored JSON (the kind's empty value when nothing is stored).
func (h Handle) Read(ctx context.Context) (json.RawMessage, error) {
	res, err := h.s.Do(ctx, Request{Kind: h.kind, Op: OpRead, Key: h.key})
	return res.Value, err
}

// Write stores a JSON value; when is the logical time (epoch ms) for kinds that carry it, else nil.
func (h Handle) Write(ctx context.Context, value json.RawMessage, when *int64) error {
	_, err := h.s.Do(ctx, Request{Kind: h.kind, Op: OpWrite, Key: h.key, Value: value, When: when})
	return err
}

// Has reports whether a record exists, tombstones included (Memory).
func (h Handle) Has(ctx context.Context) (bool, error) {
	res, err := h.s.Do(ctx, Request{Kind: h.kind, Op: OpHas, Key: h.key})
	return res.Has != nil && *res.Has, err
}

// Remove soft-deletes a record (Measure, Interval, Memory).
func (h Handle) Remove(ctx context.Context) error {
	_, err := h.s.Do(ctx, Request{Kind: h.kind, Op: OpRemove, Key: h.key})
	return err
}

// List lists a bucket (Measure, Interval: keys; Memory: {memoryId, data} entries).
func (h Handle) List(ctx context.Context) (json.RawMessage, error) {
	res, err := h.s.Do(ctx, Request{Kind: h.kind, Op: OpList, Key: h.key})
	return res.Value, err
}

// Window reads exactly limit candles starting at since (epoch ms), or JSON null.
func (h Handle) Window(ctx context.Context, since, limit int64) (json.RawMessage, error) {
	res, err := h.s.Do(ctx, Request{Kind: h.kind, Op: OpRead, Key: h.key, Since: since, Limit: limit})
	return res.Value, err
}
