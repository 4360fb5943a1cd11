package persist

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// Candles are immutable OHLCV documents with the fields at the top level, as
// @backtest-kit/mongo stores them. A window read returns exactly limit contiguous
// candles or null: from the series cache in one Redis round trip when the series is
// known (candleseries.go), otherwise with one range query on the unique index. A
// write is insert-only (first write wins), skips candles that are not closed yet, and
// returns the stored version of each candle it kept.

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
	if _, err := dec.Token(); err != io.EOF {
		return nil, invalidf("candle value has more after its array")
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
		if err != nil || t < 0 || t > maxCandleTime {
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

// appendMember appends a candle's series member "ts,open,high,low,close,volume",
// each number written as a read writes it (appendJSON of the stored BSON value).
func (cd candle) appendMember(dst []byte) []byte {
	dst = strconv.AppendInt(dst, cd.timestamp, 10)
	for _, v := range cd.values {
		dst = append(dst, ',')
		switch n := v.(type) {
		case int32:
			dst = strconv.AppendInt(dst, int64(n), 10)
		case int64:
			dst = strconv.AppendInt(dst, n, 10)
		case float64:
			dst = appendJSNumber(dst, n)
		}
	}
	return dst
}

// document is the candle's MongoDB document under the series filter.
func (cd candle) document(filter bson.D, stamp time.Time) bson.D {
	d := append(append(make(bson.D, 0, 12), filter...), bson.E{Key: candleTimestampField, Value: cd.timestamp})
	for j, f := range candleFields {
		d = append(d, bson.E{Key: f, Value: cd.values[j]})
	}
	return append(d, bson.E{Key: fieldCreateDate, Value: stamp}, bson.E{Key: fieldUpdateDate, Value: stamp})
}

// memberFromDoc renders a stored candle as its member; ok is false for a candle
// without a numeric timestamp or with a field that is not a number (corrupt).
func memberFromDoc(d bsoncore.Document) (ts int64, member []byte, ok bool) {
	v, err := d.LookupErr(candleTimestampField)
	if err != nil {
		return 0, nil, false
	}
	if ts, ok = candleTime(v); !ok {
		return 0, nil, false
	}
	member = strconv.AppendInt(make([]byte, 0, 64), ts, 10)
	for _, f := range candleFields {
		v, err := d.LookupErr(f)
		if err != nil || !v.IsNumber() {
			return 0, nil, false
		}
		member = appendJSON(append(member, ','), v, false)
	}
	return ts, member, true
}

// candleTime reads a stored open time: an integer (int32, int64, or a double without
// a fraction, as other writers may store it) from 0 to maxCandleTime, as writes
// accept. Anything else (a fraction, Decimal128, a negative time) is corrupt: it
// would otherwise be truncated or turned into 0 and cached as a candle never stored.
func candleTime(v bsoncore.Value) (int64, bool) {
	var ts int64
	switch v.Type {
	case bsoncore.TypeInt32, bsoncore.TypeInt64:
		ts, _ = v.AsInt64OK()
	case bsoncore.TypeDouble:
		f, ok := v.DoubleOK()
		if !ok || f != math.Trunc(f) || f < 0 || f > maxCandleTime {
			return 0, false
		}
		ts = int64(f)
	default:
		return 0, false
	}
	return ts, ts >= 0 && ts <= maxCandleTime
}

// appendCandleJSON appends the JSON object of a member, as a read returns it.
func appendCandleJSON(dst []byte, member []byte) ([]byte, bool) {
	dst = append(dst, `{"timestamp":`...)
	for i := 0; ; i++ {
		j := bytes.IndexByte(member, ',')
		if i == len(candleFields) {
			if j >= 0 {
				return dst, false
			}
			return append(append(dst, member...), '}'), true
		}
		if j < 0 {
			return dst, false
		}
		dst = append(append(dst, member[:j]...), ',', '"')
		dst = append(append(dst, candleFields[i]...), '"', ':')
		member = member[j+1:]
	}
}

// memberTimestamp reads the open time at the start of a member.
func memberTimestamp(member []byte) (int64, bool) {
	j := bytes.IndexByte(member, ',')
	if j < 0 {
		return 0, false
	}
	ts, err := strconv.ParseInt(string(member[:j]), 10, 64)
	return ts, err == nil
}

// seriesStep is the interval of a candle call in milliseconds.
func seriesStep(c *call) int64 { return candleIntervals[c.parts[2].(string)] }

// readCandles returns exactly limit candles starting at since, or null if any is
// missing: from the series cache when it knows the series, else from MongoDB.
func (s *Store) readCandles(ctx context.Context, c *call) (Result, bool, error) {
	step := seriesStep(c)
	since, limit := c.req.Since, c.req.Limit
	if s.cache == nil || !s.cache.usable() || since%step != 0 {
		return s.readCandlesMongo(ctx, c)
	}
	last := since + (limit-1)*step
	code, members, err := s.cache.readSeries(ctx, c.parts, since, last, limit)
	switch {
	case err != nil:
		s.cache.failed(ctx, err)
		return s.readCandlesMongo(ctx, c)
	case !s.cache.usable():
		// marked suspect while the lookup was in flight: do not trust the answer
		return s.readCandlesMongo(ctx, c)
	}
	switch code {
	case seriesHit:
		if out, ok := windowJSON(members, since, step); ok {
			return Result{Value: out}, true, nil
		}
		s.rebuildSeries(c.parts, step)
	case seriesMiss:
		return Result{Value: []byte("null")}, true, nil
	case seriesUnknown:
		s.rebuildSeries(c.parts, step)
	}
	return s.readCandlesMongo(ctx, c)
}

// windowJSON joins a window's members, checking that they are the contiguous
// candles from since (anything else: the caller goes to MongoDB).
func windowJSON(members []any, since, step int64) ([]byte, bool) {
	out := make([]byte, 0, len(members)*100+2)
	out = append(out, '[')
	for i, m := range members {
		str, _ := m.(string)
		mb := []byte(str)
		if ts, ok := memberTimestamp(mb); !ok || ts != since+int64(i)*step {
			return nil, false
		}
		if i > 0 {
			out = append(out, ',')
		}
		var ok bool
		if out, ok = appendCandleJSON(out, mb); !ok {
			return nil, false
		}
	}
	return append(out, ']'), true
}

// readCandlesMongo is the window read as one range query on the unique index.
func (s *Store) readCandlesMongo(ctx context.Context, c *call) (Result, bool, error) {
	step := seriesStep(c)
	since, limit := c.req.Since, c.req.Limit
	// Only the window's own open times (since + i*step): other candles inside its
	// range (unaligned ones, which writes accept) must neither fill the limit nor be
	// taken for a gap, as the series cache, which holds aligned candles only, ignores them.
	filter := append(append(bson.D{}, c.mongoFilter()...), bson.E{Key: candleTimestampField,
		Value: bson.D{{Key: "$gte", Value: since}, {Key: "$lt", Value: since + limit*step},
			{Key: "$mod", Value: bson.A{step, since % step}}}})
	opts := options.Find().SetProjection(candleProjection()).SetSort(bson.D{{Key: candleTimestampField, Value: 1}}).
		SetLimit(-limit).SetBatchSize(int32(limit)) // negative: one batch, no getMore
	cur, err := s.opts.Database.Collection(c.spec.Collection).Find(ctx, filter, opts)
	if err != nil {
		return Result{}, false, wrapMongo(c, "find", err)
	}
	defer cur.Close(ctx)
	out := make([]byte, 0, min(limit, 64)*120+2) // grown as candles come: an empty answer costs no limit-sized buffer
	out = append(out, '[')
	var n int64
	for cur.Next(ctx) {
		ts, member, ok := memberFromDoc(bsoncore.Document(cur.Current))
		if !ok || ts != since+n*step {
			return Result{Value: []byte("null")}, false, nil // a gap, or a corrupt candle
		}
		if n > 0 {
			out = append(out, ',')
		}
		out, _ = appendCandleJSON(out, member)
		n++
	}
	if err := cur.Err(); err != nil {
		return Result{}, false, wrapMongo(c, "find", err)
	}
	if n != limit {
		return Result{Value: []byte("null")}, false, nil
	}
	return Result{Value: append(out, ']')}, false, nil
}

func candleProjection() bson.D {
	proj := bson.D{{Key: "_id", Value: 0}, {Key: candleTimestampField, Value: 1}}
	for _, f := range candleFields {
		proj = append(proj, bson.E{Key: f, Value: 1})
	}
	return proj
}

// writeCandles inserts the closed candles that are not stored yet and returns, in
// ascending open time, the stored version of every closed candle of the request.
//
// With the cache on, the write marks the series first (candleseries.go): the mark
// also returns the candles the series already holds, which are neither inserted nor
// looked up. A mark that fails means nothing is written (ErrUnavailable). The others
// are inserted; those already stored (duplicate keys) are read back from MongoDB.
// The update then adds every stored candle to the series.
func (s *Store) writeCandles(ctx context.Context, c *call) (Result, error) {
	step := seriesStep(c)
	now := s.opts.Now().UnixMilli()
	seen := make(map[int64]bool, len(c.candles))
	closed := make([]candle, 0, len(c.candles))
	for _, cd := range c.candles {
		if cd.timestamp > now-step || seen[cd.timestamp] {
			continue // not closed yet (contract 2.7), or repeated in this write (first wins)
		}
		seen[cd.timestamp] = true
		closed = append(closed, cd)
	}
	sort.Slice(closed, func(i, j int) bool { return closed[i].timestamp < closed[j].timestamp })
	stored := make([][]byte, len(closed)) // members of the stored versions
	token := ""
	if s.cache != nil {
		var aligned []int64
		var at []int // index in closed of each aligned candle
		for i, cd := range closed {
			if cd.timestamp%step == 0 {
				aligned = append(aligned, cd.timestamp)
				at = append(at, i)
			}
		}
		var known []any
		var err error
		if len(aligned) > 0 {
			token, known, err = s.cache.markSeries(ctx, c.parts, aligned)
			if err != nil {
				s.cache.failed(ctx, err)
				return Result{}, fmt.Errorf("%w: candle write: not written: %v", ErrUnavailable, err)
			}
		}
		for i, k := range known {
			if str, ok := k.(string); ok && i < len(at) {
				if ts, ok := memberTimestamp([]byte(str)); ok && ts == closed[at[i]].timestamp {
					stored[at[i]] = []byte(str)
				}
			}
		}
	}
	if err := s.insertCandles(ctx, c, closed, stored); err != nil {
		if token != "" {
			_ = s.cache.endSeries(ctx, c.parts, token, step, nil, false)
		}
		return Result{}, err
	}
	if token != "" {
		pairs := make([]any, 0, 2*len(closed))
		for i, cd := range closed {
			if stored[i] != nil && cd.timestamp%step == 0 {
				pairs = append(pairs, cd.timestamp, stored[i])
			}
		}
		if err := s.cache.endSeries(ctx, c.parts, token, step, pairs, true); err != nil {
			s.cache.failed(ctx, err)
			return Result{}, fmt.Errorf("%w: candle write: may have been applied, retry: %v", ErrUnavailable, err)
		}
	}
	out := make([]byte, 0, len(closed)*100+2)
	out = append(out, '[')
	n := 0
	for _, m := range stored {
		if m == nil {
			continue
		}
		if n > 0 {
			out = append(out, ',')
		}
		out, _ = appendCandleJSON(out, m)
		n++
	}
	return Result{Value: append(out, ']')}, nil
}

// insertCandles inserts the candles whose stored version is not known yet and fills
// stored: a candle inserted is stored as sent; one that was already stored (a
// duplicate key) is read back from MongoDB with one find.
func (s *Store) insertCandles(ctx context.Context, c *call, closed []candle, stored [][]byte) error {
	stamp := time.Now().UTC()
	var docs []any
	var at []int
	for i, cd := range closed {
		if stored[i] != nil {
			continue
		}
		docs = append(docs, cd.document(c.mongoFilter(), stamp))
		at = append(at, i)
	}
	if len(docs) == 0 {
		return nil
	}
	coll := s.opts.Database.Collection(c.spec.Collection)
	dup, err := s.insertReportingDuplicates(ctx, c, coll, docs)
	if err != nil {
		return err
	}
	var again []int64
	for k, i := range at {
		if dup[k] {
			again = append(again, closed[i].timestamp)
		} else {
			stored[i] = closed[i].appendMember(make([]byte, 0, 64))
		}
	}
	if len(again) == 0 {
		return nil
	}
	filter := append(append(bson.D{}, c.mongoFilter()...), bson.E{Key: candleTimestampField,
		Value: bson.D{{Key: "$in", Value: again}}})
	cur, err := coll.Find(ctx, filter, options.Find().SetProjection(candleProjection()))
	if err != nil {
		return wrapMongo(c, "find", err)
	}
	defer cur.Close(ctx)
	found := make(map[int64][]byte, len(again))
	corrupt := 0
	for cur.Next(ctx) {
		if ts, m, ok := memberFromDoc(bsoncore.Document(cur.Current)); ok {
			found[ts] = m
		} else {
			corrupt++
		}
	}
	if err := cur.Err(); err != nil {
		return wrapMongo(c, "find", err)
	}
	if missing := len(again) - len(found); missing > corrupt {
		// Refused as a duplicate, yet this series holds no candle there: another
		// unique index refused it (an adopted database's, not migrated yet), and
		// answering success would acknowledge candles that are not stored.
		return fmt.Errorf("%s write: MongoDB refused %d candles as duplicates but this series holds none of them (a unique index other than the store's; the tenant's index migration has not run?)", c.spec.Kind, missing-corrupt)
	}
	for i, cd := range closed {
		if stored[i] == nil {
			stored[i] = found[cd.timestamp] // nil for a corrupt stored candle: left out of the answer
		}
	}
	return nil
}
