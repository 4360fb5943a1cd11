package persist

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
	"golang.org/x/sync/errgroup"
)

// List kinds (Storage, Notification, Log) take the whole array on every write and
// keep one document per item, keyed by the item's "id". backtest-kit resends up to
// 500 items of which nearly all are unchanged, so each document carries a content
// hash of the item's JSON: a write first fetches the stored hashes of the sent ids
// (one find) and then writes only new or changed items, in unordered bulk calls of
// at most bulkChunk operations. Log is insert-only: existing ids are never rewritten.
// Writes never delete items (a retention policy may, retention.go). Reads return the
// consumer's window from the list's head (listhead.go).

// bulkChunk bounds one bulk upsert call: FerretDB deadlocks on ~100 matching operations.
const bulkChunk = 50

// insertChunk bounds one insertMany call (inserts do not suffer the upsert deadlock).
const insertChunk = 500

// listItem is one element of a list write.
type listItem struct {
	id   string
	raw  json.RawMessage
	hash string
	enc  *encodedPayload // set by encodeItems
}

// parseListItems checks a list value: an array of at most limit objects, each with
// a string "id". A repeated id keeps its last occurrence, as sequential writes of
// the items would.
func (s *Store) parseListItems(value []byte, limit int) ([]listItem, error) {
	if value[0] != '[' {
		return nil, invalidf("value must be a JSON array of objects with an \"id\"")
	}
	if !json.Valid(value) {
		return nil, invalidf("value is not valid JSON")
	}
	raws := splitArray(value)
	if len(raws) > limit {
		return nil, tooLargef("a list write holds %d items, the limit is %d", len(raws), limit)
	}
	items := make([]listItem, 0, len(raws))
	pos := make(map[string]int, len(raws))
	for i, raw := range raws {
		if len(raw) == 0 || raw[0] != '{' {
			return nil, invalidf("item %d must be a JSON object", i)
		}
		lit, ok := topLevelField(raw, "id")
		id, isStr := stringLiteral(lit)
		if !ok || !isStr {
			return nil, invalidf("item %d needs a string \"id\"", i)
		}
		if err := s.checkKeyString("id", id, false); err != nil {
			return nil, err
		}
		sum := sha256.Sum256(raw)
		it := listItem{id: id, raw: raw, hash: hex.EncodeToString(sum[:16])}
		if j, dup := pos[id]; dup {
			items[j] = it
			continue
		}
		pos[id] = len(items)
		items = append(items, it)
	}
	return items, nil
}

// writeList stores the new and changed items of a list write. With the cache on,
// changed items are first removed from the list hash (listhash.go): a write that
// cannot do so does not commit.
func (s *Store) writeList(ctx context.Context, c *call) error {
	if len(c.items) == 0 {
		return nil
	}
	release, err := s.locks.lock(ctx, string(c.spec.Kind)+"\x00"+s.keys.record(c.spec.Kind, c.parts))
	if err != nil {
		return err
	}
	ids := make([]string, len(c.items))
	for i, it := range c.items {
		ids[i] = it.id
	}
	hkey := ""
	var st listState
	if s.cache != nil {
		hkey = s.keys.listHashes(c.spec.Kind, c.parts)
		if s.cache.usable() {
			if st, err = s.cache.listLookup(ctx, hkey, ids); err != nil {
				s.cache.failed(ctx, err)
				st = listState{}
			}
		}
	}
	stored := st.hashes
	if !st.known {
		if stored, err = s.knownHashes(ctx, c, ids); err != nil {
			release()
			return err
		}
	}
	var todo []listItem
	for _, it := range c.items {
		h, ok := stored[it.id]
		if !ok || (!c.spec.InsertOnly && h != it.hash) {
			todo = append(todo, it)
		}
	}
	// The commit outlives a caller that gives up, holding the list's lock (and its
	// token), as record writes do (versioned.go): the process's next write of the
	// list never runs beside items still being written.
	commit := func(cctx context.Context) (bson.Raw, error) { return nil, s.commitList(cctx, ctx, c, todo) }
	if s.cache == nil || (st.known && len(todo) == 0) {
		return s.settledCommit(ctx, release, commit, func(_ context.Context, _ bson.Raw, err error) error { return err })
	}
	token, gen := "", st.gen
	if len(todo) > 0 {
		changed := make([]string, len(todo))
		for i, it := range todo {
			changed[i] = it.id
		}
		token = newToken()
		if gen, err = s.cache.listMark(ctx, hkey, token, changed); err != nil {
			release()
			s.cache.failed(ctx, err)
			return fmt.Errorf("%w: %s write: not written: %v", ErrCacheUnavailable, c.spec.Kind, err)
		}
	}
	return s.settledCommit(ctx, release, commit, func(ctx context.Context, _ bson.Raw, err error) error {
		if err != nil {
			// The changed items' fields are gone, so nothing is skipped wrongly; withdraw
			// the token (best effort) so that other writes may store hashes again.
			if token != "" {
				_ = s.cache.listStore(context.WithoutCancel(ctx), hkey, token, "-", "", false, nil)
			}
			return err
		}
		gen := gen
		if st.epoch == "" || !s.cache.usable() {
			if token == "" {
				return nil
			}
			gen = "-" // remove the token, store nothing
		}
		// Record what is stored now: the new hashes of written items, and for insert-only
		// kinds the stored hashes of the items that were already there.
		now := make(map[string]string, len(c.items))
		if gen != "-" {
			for _, it := range c.items {
				if h, ok := stored[it.id]; ok && c.spec.InsertOnly {
					now[it.id] = h
				} else {
					now[it.id] = it.hash
				}
			}
		}
		if err := s.cache.listStore(context.WithoutCancel(ctx), hkey, token, gen, st.epoch, !st.known, now); err != nil {
			s.cache.failed(ctx, err) // acknowledged: the changed items' fields are absent
		}
		return nil
	})
}

// storedHashes asks MongoDB for the content hashes of the given ids.
func (s *Store) storedHashes(ctx context.Context, c *call, ids []string) (map[string]string, error) {
	idField := c.spec.ItemField.Doc
	in := make(bson.A, len(ids))
	for i, id := range ids {
		in[i] = id
	}
	filter := append(append(bson.D{}, c.mongoFilter()...), bson.E{Key: idField, Value: bson.D{{Key: "$in", Value: in}}})
	docs, err := s.findAll(ctx, c, filter, bson.D{{Key: "_id", Value: 0}, {Key: idField, Value: 1}, {Key: fieldHash, Value: 1}}, nil)
	if err != nil {
		return nil, err
	}
	stored := make(map[string]string, len(docs))
	for _, d := range docs {
		id, _ := d.Lookup(idField).StringValueOK()
		h, _ := d.Lookup(fieldHash).StringValueOK()
		stored[id] = h
	}
	return stored, nil
}

// commitList writes the new and changed items into the item collection, then into
// the list's head, and now and then trims the head. A failed trim leaves a larger
// head, which reads cut to the window, so it does not fail the write.
// caller is the context of the write's caller: once it has ended, no item upsert
// is tried again at a version read anew (versioned.go).
func (s *Store) commitList(ctx, caller context.Context, c *call, todo []listItem) error {
	if len(todo) == 0 {
		return nil
	}
	if err := encodeItems(todo); err != nil {
		return err
	}
	written, err := s.writeListItems(ctx, caller, c, todo)
	if err != nil {
		return err
	}
	if s.beforeHeadPut != nil {
		s.beforeHeadPut()
	}
	if err := s.headPut(ctx, c, todo, written); err != nil {
		return err
	}
	if s.heads.grew(s.headKey(c), len(todo), s.Window(c.spec.Kind)) {
		_ = s.headTrim(ctx, c)
	}
	return nil
}

// itemWrites is what the commit of a list write's items decided, per item, for its
// head copy: the version the item's upsert gave it (upsert kinds; the item
// collection's order of writes), or whether the item was stored already
// (insert-only kinds: the stored content wins, whoever sent it).
type itemWrites struct {
	versions []int64
	stored   []bool
}

// itemHintKey names a list item among the version hints (versioned.go).
func (s *Store) itemHintKey(c *call, id string) string {
	return "\x01" + s.keys.record(c.spec.Kind, c.parts) + "\x00" + id
}

// itemWriteConcurrency bounds the item upserts of one list write in flight at once.
const itemWriteConcurrency = 4

// writeListItems writes the new and changed items: unordered insertMany for
// insert-only kinds, one versioned upsert per item otherwise (versioned.go: a late
// upsert of an item never overwrites a later one), each returning the item's new
// version, so that the head copies follow the item collection's order of writes
// even when two replicas write one item at once.
func (s *Store) writeListItems(ctx, caller context.Context, c *call, todo []listItem) (itemWrites, error) {
	idField := c.spec.ItemField.Doc
	now := time.Now().UTC()
	coll := s.opts.Database.Collection(c.spec.Collection)
	if c.spec.InsertOnly {
		docs := make([]any, 0, len(todo))
		for _, it := range todo {
			p := it.enc
			d := append(append(bson.D{}, c.mongoFilter()...),
				bson.E{Key: idField, Value: it.id},
				bson.E{Key: c.spec.PayloadField, Value: bson.RawValue{Type: bson.Type(p.Value.Type), Value: p.Value.Data}},
				bson.E{Key: fieldHash, Value: it.hash},
				bson.E{Key: fieldVersion, Value: int64(1)},
				bson.E{Key: fieldCreateDate, Value: now}, bson.E{Key: fieldUpdateDate, Value: now})
			if p.Encoding == encodingEscaped {
				d = append(d, bson.E{Key: fieldEncoding, Value: int32(encodingEscaped)})
			}
			docs = append(docs, d)
		}
		stored, err := s.insertReportingDuplicates(ctx, c, coll, docs)
		return itemWrites{stored: stored}, err
	}
	versions := make([]int64, len(todo))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(itemWriteConcurrency)
	for i, it := range todo {
		g.Go(func() error {
			p := it.enc
			set := bson.D{{Key: c.spec.PayloadField, Value: bson.RawValue{Type: bson.Type(p.Value.Type), Value: p.Value.Data}},
				{Key: fieldHash, Value: it.hash}, {Key: fieldUpdateDate, Value: now}}
			update := upsertUpdate(set, now, p.Encoding)
			f := append(append(bson.D{}, c.mongoFilter()...), bson.E{Key: idField, Value: it.id})
			hk := s.itemHintKey(c, it.id)
			raw, err := s.versionedWrite(gctx, caller, coll, f, update, s.hints.get(hk), true, versionProjection)
			if err != nil {
				s.hints.forget(hk)
				return wrapMongo(c, "upsert", err)
			}
			versions[i] = docInt(bsoncore.Document(raw), fieldVersion)
			s.hints.put(hk, versions[i])
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return itemWrites{}, err
	}
	return itemWrites{versions: versions}, nil
}

// insertReportingDuplicates inserts docs with unordered insertMany calls and says
// which were already stored: a duplicate-key error means "already stored"
// (insert-only kinds) and is not an error.
func (s *Store) insertReportingDuplicates(ctx context.Context, c *call, coll *mongo.Collection, docs []any) ([]bool, error) {
	dup := make([]bool, len(docs))
	for start := 0; start < len(docs); start += insertChunk {
		chunk := docs[start:min(start+insertChunk, len(docs))]
		_, err := coll.InsertMany(ctx, chunk, options.InsertMany().SetOrdered(false))
		if err == nil {
			continue
		}
		if !onlyDuplicates(err) {
			return nil, wrapMongo(c, "insert", err)
		}
		var bwe mongo.BulkWriteException
		errors.As(err, &bwe)
		for _, we := range bwe.WriteErrors {
			if we.Index >= 0 && we.Index < len(chunk) {
				dup[start+we.Index] = true
			}
		}
	}
	return dup, nil
}

// onlyDuplicates reports whether every write error of a bulk insert is a duplicate key.
func onlyDuplicates(err error) bool {
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil || len(bwe.WriteErrors) == 0 {
		return false
	}
	for _, we := range bwe.WriteErrors {
		if we.Code != 11000 && we.Code != 11001 {
			return false
		}
	}
	return true
}
