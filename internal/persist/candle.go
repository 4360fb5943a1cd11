package persist

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// Candles are immutable OHLCV documents with the fields at the top level, as
// @backtest-kit/mongo stores them. A window read is one range query on the unique
// index returning exactly limit contiguous candles or null; a complete window never
// changes, so it is cached without invalidation. A write is insert-only (first write
// wins) and skips candles that are not closed yet.

// candleIntervals are backtest-kit's intervals and their length in milliseconds.
var candleIntervals = map[string]int64{
	"1m": 60_000, "3m": 3 * 60_000, "5m": 5 * 60_000, "15m": 15 * 60_000, "30m": 30 * 60_000,
	"1h": 3_600_000, "2h": 2 * 3_600_000, "4h": 4 * 3_600_000, "6h": 6 * 3_600_000, "8h": 8 * 3_600_000,
	"1d": 86_400_000,
}

// candleFields are the OHLCV fields after timestamp, in ICandleData order.
var candleFields = [...]string{"open", "high", "low", "close", "volume"}

// candle is one validated candle of a write.
type candle struct {
	timestamp int64
	values    [len(candleFields)]any // int32, int64 or float64
}

// parseCandles checks a candle write: an array of objects with a millisecond
// "timestamp" and numeric open, high, low, close and volume.
func parseCandles(value []byte) ([]candle, error) {
	if value[0] != '[' {
		return nil, invalidf("candle value must be a JSON array of candles")
	}
	dec := json.NewDecoder(bytes.NewReader(value))
	dec.UseNumber()
	var raws []map[string]any
	if err := dec.Decode(&raws); err != nil {
		return nil, invalidf("candle value is not a JSON array of objects: %v", err)
	}
	out := make([]candle, 0, len(raws))
	for i, m := range raws {
		if m == nil {
			return nil, invalidf("candle %d must be a JSON object", i)
		}
		ts, ok := m["timestamp"].(json.Number)
		if !ok {
			return nil, invalidf("candle %d needs a numeric timestamp", i)
		}
		t, err := strconv.ParseInt(string(ts), 10, 64)
		if err != nil || t < 0 {
			return nil, invalidf("candle %d: timestamp %s is not epoch milliseconds", i, ts)
		}
		c := candle{timestamp: t}
		for j, f := range candleFields {
			n, ok := m[f].(json.Number)
			if !ok {
				return nil, invalidf("candle %d needs a numeric %q", i, f)
			}
			v, err := numberValue(string(n))
			if err != nil {
				return nil, invalidf("candle %d: %q: %v", i, f, err)
			}
			c.values[j] = v
		}
		out = append(out, c)
	}
	return out, nil
}

// numberValue converts a JSON number literal the way the payload codec does.
func numberValue(lit string) (any, error) {
	if n, err := strconv.ParseInt(lit, 10, 64); err == nil {
		if n >= -1<<31 && n < 1<<31 {
			return int32(n), nil
		}
		return n, nil
	}
	return strconv.ParseFloat(lit, 64)
}

// writeCandles inserts the closed candles that are not stored yet.
func (s *Store) writeCandles(ctx context.Context, c *call) error {
	step := candleIntervals[c.parts[2].(string)]
	now := s.opts.Now().UnixMilli()
	seen := make(map[int64]bool, len(c.candles))
	stamp := time.Now().UTC()
	docs := make([]any, 0, len(c.candles))
	for _, cd := range c.candles {
		if cd.timestamp+step > now || seen[cd.timestamp] {
			continue // not closed yet (contract 2.7), or repeated in this write (first wins)
		}
		seen[cd.timestamp] = true
		d := append(append(make(bson.D, 0, 12), c.mongoFilter()...), bson.E{Key: candleTimestampField, Value: cd.timestamp})
		for j, f := range candleFields {
			d = append(d, bson.E{Key: f, Value: cd.values[j]})
		}
		d = append(d, bson.E{Key: fieldCreateDate, Value: stamp}, bson.E{Key: fieldUpdateDate, Value: stamp})
		docs = append(docs, d)
	}
	if len(docs) == 0 {
		return nil
	}
	return s.insertIgnoringDuplicates(ctx, c, s.opts.Database.Collection(c.spec.Collection), docs)
}

// readCandles returns exactly limit candles starting at since, or null if any is missing.
func (s *Store) readCandles(ctx context.Context, c *call) (Result, bool, error) {
	step := candleIntervals[c.parts[2].(string)]
	since, limit := c.req.Since, c.req.Limit
	useCache := s.cache != nil && s.cache.usable()
	key, epoch := "", ""
	if useCache {
		key = s.keys.candleWindow(c.parts, since, limit)
		js, ep, hit, err := s.cache.getWindow(ctx, key)
		switch {
		case err != nil:
			s.cache.markSuspect(err)
			useCache = false
		case hit:
			return Result{Value: js}, true, nil
		default:
			epoch = ep
		}
	}
	filter := append(append(bson.D{}, c.mongoFilter()...), bson.E{Key: candleTimestampField,
		Value: bson.D{{Key: "$gte", Value: since}, {Key: "$lt", Value: since + limit*step}}})
	proj := bson.D{{Key: "_id", Value: 0}, {Key: candleTimestampField, Value: 1}}
	for _, f := range candleFields {
		proj = append(proj, bson.E{Key: f, Value: 1})
	}
	opts := options.Find().SetProjection(proj).SetSort(bson.D{{Key: candleTimestampField, Value: 1}}).
		SetLimit(-limit).SetBatchSize(int32(limit)) // negative: one batch, no getMore
	cur, err := s.opts.Database.Collection(c.spec.Collection).Find(ctx, filter, opts)
	if err != nil {
		return Result{}, false, wrapMongo(c, "find", err)
	}
	defer cur.Close(ctx)
	out := make([]byte, 0, limit*120+2)
	out = append(out, '[')
	var n int64
	for cur.Next(ctx) {
		d := bsoncore.Document(cur.Current)
		ts := docInt(d, candleTimestampField)
		if ts != since+n*step {
			return Result{Value: []byte("null")}, false, nil // a gap
		}
		if n > 0 {
			out = append(out, ',')
		}
		out = append(out, `{"timestamp":`...)
		out = strconv.AppendInt(out, ts, 10)
		for _, f := range candleFields {
			v, err := d.LookupErr(f)
			if err != nil || !v.IsNumber() {
				return Result{Value: []byte("null")}, false, nil // a corrupt candle is a miss
			}
			out = append(out, ',', '"')
			out = append(out, f...)
			out = append(out, '"', ':')
			out = appendJSON(out, v, false)
		}
		out = append(out, '}')
		n++
	}
	if err := cur.Err(); err != nil {
		return Result{}, false, wrapMongo(c, "find", err)
	}
	if n != limit {
		return Result{Value: []byte("null")}, false, nil
	}
	out = append(out, ']')
	if useCache {
		if err := s.cache.putWindow(ctx, key, epoch, out); err != nil {
			s.cache.markSuspect(err)
		}
	}
	return Result{Value: out}, false, nil
}
