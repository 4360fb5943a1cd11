package persist

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// Document fields beside the key fields and the payload. createDate, updatedDate,
// removed and when are those of @backtest-kit/mongo; the others are this store's.
const (
	fieldCreateDate = "createDate"
	fieldUpdateDate = "updatedDate"
	fieldRemoved    = "removed"
	fieldWhen       = "when"
	fieldVersion    = "version"         // incremented by every write: orders cache entries
	fieldEncoding   = "payloadEncoding" // 1 when the payload is in the escaped encoding
	fieldHash       = "payloadHash"     // content hash of a list item's JSON (R10)
)

// readRecord serves read and has of record kinds: one MGET on a hit, otherwise one
// MongoDB findOne (plus one cache fill).
func (s *Store) readRecord(ctx context.Context, c *call) (Result, bool, error) {
	key := ""
	observed, fence := "", ""
	useCache := s.cache != nil && s.cache.usable()
	if useCache {
		key = s.keys.record(c.spec.Kind, c.parts)
		e, epoch, f, hit, err := s.cache.get(ctx, key)
		switch {
		case err != nil:
			s.cache.failed(ctx, err)
			useCache = false
		case !s.cache.usable():
			// marked suspect while the lookup was in flight (a new Redis run noticed
			// on connect, a failure seen by another call): do not trust the answer
			useCache = false
		case hit:
			return recordResult(c, e), true, nil
		default:
			observed, fence = epoch, f
		}
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.OpTimeout)
	defer cancel()
	opts := options.FindOne().SetProjection(recordProjection(c.spec))
	raw, err := s.opts.Database.Collection(c.spec.Collection).FindOne(ctx, c.mongoFilter(), opts).Raw()
	var e entry
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
		e = entry{flag: flagAbsent}
	case err != nil:
		return Result{}, false, wrapMongo(c, "find", err)
	default:
		e = entryFromDoc(c.spec, bsoncore.Document(raw))
	}
	if useCache {
		if s.afterLoad != nil {
			s.afterLoad(key)
		}
		if err := s.cache.fill(ctx, key, observed, fence, e); err != nil {
			s.cache.failed(ctx, err)
		}
	}
	return recordResult(c, e), false, nil
}

// versionProjection is the projection of a write's answer that wants the version only.
var versionProjection = bson.D{{Key: "_id", Value: 0}, {Key: fieldVersion, Value: 1}}

func recordProjection(spec *KindSpec) bson.D {
	return bson.D{{Key: "_id", Value: 0}, {Key: spec.PayloadField, Value: 1}, {Key: fieldRemoved, Value: 1},
		{Key: fieldEncoding, Value: 1}, {Key: fieldVersion, Value: 1}}
}

// entryFromDoc turns a stored document into a cache entry.
func entryFromDoc(spec *KindSpec, doc bsoncore.Document) entry {
	e := entry{flag: flagPresent, version: docInt(doc, fieldVersion)}
	if spec.SoftDelete {
		if b, ok := doc.Lookup(fieldRemoved).BooleanOK(); ok && b {
			e.flag = flagRemoved
		}
	}
	payload, err := doc.LookupErr(spec.PayloadField)
	if err != nil {
		// A document without a payload (possible in adopted data) reads as the empty value.
		e.json = []byte(spec.Empty)
		return e
	}
	e.json = appendJSON(nil, payload, docInt(doc, fieldEncoding) == encodingEscaped)
	return e
}

// docInt reads an integer field stored as int32, int64 or double (0 when absent).
func docInt(doc bsoncore.Document, field string) int64 {
	v, err := doc.LookupErr(field)
	if err != nil {
		return 0
	}
	if n, ok := v.AsInt64OK(); ok {
		return n
	}
	return 0
}

// recordResult answers a read or has from an entry.
func recordResult(c *call, e entry) Result {
	if c.req.Op == OpHas {
		has := e.flag != flagAbsent // a tombstone counts: contract 2.13
		return Result{Has: &has}
	}
	if e.flag != flagPresent {
		return Result{Value: []byte(c.spec.Empty)}
	}
	return Result{Value: e.json}
}

// upsertUpdate is the update of an upsert that stores set (records and list items
// alike): createDate on insert, the version incremented, and the payload's encoding
// marker stored with it or removed.
func upsertUpdate(set bson.D, now time.Time, encoding int) bson.D {
	update := bson.D{{Key: "$setOnInsert", Value: bson.D{{Key: fieldCreateDate, Value: now}}},
		{Key: "$inc", Value: bson.D{{Key: fieldVersion, Value: int64(1)}}}}
	if encoding == encodingEscaped {
		set = append(set, bson.E{Key: fieldEncoding, Value: int32(encodingEscaped)})
	} else {
		update = append(update, bson.E{Key: "$unset", Value: bson.D{{Key: fieldEncoding, Value: ""}}})
	}
	return append(update, bson.E{Key: "$set", Value: set})
}

// writeRecord is one atomic upsert whose filter is the unique index, between the
// cache's mark and update (pending.go).
func (s *Store) writeRecord(ctx context.Context, c *call) error {
	key := s.keys.record(c.spec.Kind, c.parts)
	release, token, hint, err := s.beginKeyWrite(ctx, c, key)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	p := c.payload
	set := bson.D{{Key: c.spec.PayloadField, Value: bson.RawValue{Type: bson.Type(p.Value.Type), Value: p.Value.Data}},
		{Key: fieldUpdateDate, Value: now}}
	removed := false
	if c.spec.SoftDelete {
		if doc, ok := p.Value.DocumentOK(); ok {
			removed, _ = doc.Lookup(fieldRemoved).BooleanOK()
		}
		set = append(set, bson.E{Key: fieldRemoved, Value: removed})
	}
	if c.spec.HasWhen && c.req.When != nil {
		set = append(set, bson.E{Key: fieldWhen, Value: *c.req.When})
	}
	update := upsertUpdate(set, now, p.Encoding)
	coll := s.opts.Database.Collection(c.spec.Collection)
	commit := func(cctx context.Context) (bson.Raw, error) {
		return s.versionedWrite(cctx, ctx, coll, c.mongoFilter(), update, hint, true, versionProjection)
	}
	return s.settledCommit(ctx, release, commit, func(ctx context.Context, raw bson.Raw, err error) error {
		if err != nil {
			s.abortKeyWrite(ctx, key, token)
			return wrapMongo(c, "upsert", err)
		}
		e := entry{version: docInt(bsoncore.Document(raw), fieldVersion), flag: flagPresent,
			json: appendJSON(nil, p.Value, p.Encoding == encodingEscaped)}
		if removed {
			e.flag = flagRemoved
		}
		return s.endKeyWrite(ctx, c, key, token, e)
	})
}

// removeRecord soft-deletes (Measure, Interval, Memory): removed=true on the document
// and inside the payload, as @backtest-kit/mongo does. Absent records stay absent.
func (s *Store) removeRecord(ctx context.Context, c *call) error {
	key := s.keys.record(c.spec.Kind, c.parts)
	release, token, hint, err := s.beginKeyWrite(ctx, c, key)
	if err != nil {
		return err
	}
	update := bson.D{
		{Key: "$set", Value: bson.D{{Key: fieldRemoved, Value: true},
			{Key: c.spec.PayloadField + "." + fieldRemoved, Value: true},
			{Key: fieldUpdateDate, Value: time.Now().UTC()}}},
		{Key: "$inc", Value: bson.D{{Key: fieldVersion, Value: int64(1)}}},
	}
	coll := s.opts.Database.Collection(c.spec.Collection)
	commit := func(cctx context.Context) (bson.Raw, error) {
		return s.versionedWrite(cctx, ctx, coll, c.mongoFilter(), update, hint, false, recordProjection(c.spec))
	}
	return s.settledCommit(ctx, release, commit, func(ctx context.Context, raw bson.Raw, err error) error {
		if errors.Is(err, mongo.ErrNoDocuments) {
			return s.endKeyWrite(ctx, c, key, token, entry{flag: flagAbsent})
		}
		if err != nil {
			s.abortKeyWrite(ctx, key, token)
			return wrapMongo(c, "soft delete", err)
		}
		return s.endKeyWrite(ctx, c, key, token, entryFromDoc(c.spec, bsoncore.Document(raw)))
	})
}

// listRecords lists the live (not removed) records of a bucket: Measure and Interval
// return their keys, Memory returns [{"memoryId","data"}]. Complete, in key order.
func (s *Store) listRecords(ctx context.Context, c *call) (Result, error) {
	item := c.spec.ItemField.Doc
	filter := append(append(bson.D{}, c.mongoFilter()...), bson.E{Key: fieldRemoved, Value: bson.D{{Key: "$ne", Value: true}}})
	proj := bson.D{{Key: "_id", Value: 0}, {Key: item, Value: 1}}
	withData := c.spec.Kind == KindMemory
	if withData {
		proj = append(proj, bson.E{Key: c.spec.PayloadField, Value: 1}, bson.E{Key: fieldEncoding, Value: 1})
	}
	docs, err := s.findAll(ctx, c, filter, proj, nil)
	if err != nil {
		return Result{}, err
	}
	type row struct {
		id   string
		json []byte
	}
	rows := make([]row, 0, len(docs))
	for _, d := range docs {
		id, ok := d.Lookup(item).StringValueOK()
		if !ok {
			continue
		}
		r := row{id: id}
		if withData {
			r.json = []byte("null")
			if v, err := d.LookupErr(c.spec.PayloadField); err == nil {
				r.json = appendJSON(nil, v, docInt(d, fieldEncoding) == encodingEscaped)
			}
		}
		rows = append(rows, r)
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].id < rows[j].id })
	out := []byte{'['}
	for i, r := range rows {
		if i > 0 {
			out = append(out, ',')
		}
		if withData {
			out = append(out, `{"memoryId":`...)
			out = appendJSONString(out, r.id)
			out = append(out, `,"data":`...)
			out = append(out, r.json...)
			out = append(out, '}')
		} else {
			out = appendJSONString(out, r.id)
		}
	}
	return Result{Value: append(out, ']')}, nil
}

// findAll reads every matching document in as few round trips as the server allows,
// and fails (never truncates) past MaxListItems.
func (s *Store) findAll(ctx context.Context, c *call, filter, proj, sortBy bson.D) ([]bsoncore.Document, error) {
	opts := options.Find().SetProjection(proj).SetBatchSize(10_000).SetLimit(int64(s.opts.MaxListItems) + 1)
	if sortBy != nil {
		opts.SetSort(sortBy)
	}
	cur, err := s.opts.Database.Collection(c.spec.Collection).Find(ctx, filter, opts)
	if err != nil {
		return nil, wrapMongo(c, "find", err)
	}
	defer cur.Close(ctx)
	var docs []bsoncore.Document
	for cur.Next(ctx) {
		docs = append(docs, bsoncore.Document(append([]byte(nil), cur.Current...)))
	}
	if err := cur.Err(); err != nil {
		return nil, wrapMongo(c, "find", err)
	}
	if len(docs) > s.opts.MaxListItems {
		return nil, tooLargef("%s list has more than %d items", c.spec.Kind, s.opts.MaxListItems)
	}
	return docs, nil
}

// findAndModify runs findOneAndUpdate returning the new document, projected where the
// server supports it (FerretDB does not: NotImplemented, code 238; the store then
// stops asking).
func (s *Store) findAndModify(ctx context.Context, coll *mongo.Collection, filter, update any, upsert bool, proj bson.D) (bson.Raw, error) {
	opts := options.FindOneAndUpdate().SetUpsert(upsert).SetReturnDocument(options.After)
	project := !s.noFAMProjection.Load()
	if project {
		opts.SetProjection(proj)
	}
	raw, err := coll.FindOneAndUpdate(ctx, filter, update, opts).Raw()
	var se mongo.ServerError
	if project && err != nil && errors.As(err, &se) && se.HasErrorCode(238) {
		s.noFAMProjection.Store(true)
		return s.findAndModify(ctx, coll, filter, update, upsert, proj)
	}
	return raw, err
}

// beginKeyWrite serializes writes of one key inside the process and, with the cache
// on, marks the key pending in Redis before the commit. A mark that fails means the
// write must not commit: the error wraps ErrUnavailable and the cache is suspect.
// release ends the serialization; token is "" without the cache; hint is the
// version the write follows as far as the process knows: the cache entry the mark
// found, else the version its last write of the key set (versionUnknown: neither).
func (s *Store) beginKeyWrite(ctx context.Context, c *call, key string) (release func(), token string, hint int64, err error) {
	release, err = s.locks.lock(ctx, string(c.spec.Kind)+"\x00"+key)
	if err != nil {
		return nil, "", 0, err
	}
	hint = versionUnknown
	if s.cache != nil {
		token, hint, err = s.cache.mark(ctx, key)
		if err != nil {
			release()
			s.cache.failed(ctx, err)
			return nil, "", 0, fmt.Errorf("%w: %s %s: not written: %v", ErrCacheUnavailable, c.spec.Kind, c.req.Op, err)
		}
	}
	if hint == versionUnknown {
		hint = s.hints.get(key)
	}
	return release, token, hint, nil
}

// endKeyWrite stores a committed write's entry and removes its marker, and keeps
// its version as the key's next hint. If the cache update fails the marker stays
// (readers go to MongoDB) and the write answers ErrUnavailable: it may have been
// applied, and a retry (an idempotent overwrite) is safe.
func (s *Store) endKeyWrite(ctx context.Context, c *call, key, token string, e entry) error {
	if e.flag == flagAbsent {
		s.hints.forget(key)
	} else {
		s.hints.put(key, e.version)
	}
	if s.cache == nil {
		return nil
	}
	// the commit is done: the caller giving up now must not cut its update short
	if err := s.cache.update(context.WithoutCancel(ctx), key, token, e); err != nil {
		s.cache.failed(ctx, err)
		return fmt.Errorf("%w: %s %s: may have been applied, retry: %v", ErrCacheUnavailable, c.spec.Kind, c.req.Op, err)
	}
	return nil
}

// abortKeyWrite ends a write whose commit failed (or may have happened): the
// key's version is unknown.
func (s *Store) abortKeyWrite(ctx context.Context, key, token string) {
	s.hints.forget(key)
	if s.cache != nil {
		s.cache.abort(ctx, key, token)
	}
}
