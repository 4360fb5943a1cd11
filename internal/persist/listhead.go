package persist

import (
	"cmp"
	"container/heap"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// List heads. A live bot keeps writing notifications, logs and signal rows for
// months, but backtest-kit keeps only a window of each list (the 50 storage rows
// and the 1,000 log lines of highest priority, the newest 500 notifications by
// createdAt) and reads the list once, at start. A list read therefore returns that
// window, not the history, and it reads it from a head collection beside the item
// collection (KindSpec.Head) that holds only the window of each list context: its
// cost does not grow with the history, also on servers that scan whole collections
// for every query (FerretDB). The item collection keeps every item (until a
// retention policy prunes it, retention.go).
//
// Head documents are copies of item documents (same key fields, payload, encoding
// and hash) plus "sortKey", the item's sort field as a number. A meta document per
// list context (item id "", which no item has) records that the head was built and
// for which window. The invariant: every item among the Window of highest sortKey in
// the item collection is in the head, as new as it is there. It holds because
//
//   - a write commits its new and changed items to the item collection, then puts
//     them into the head, and is acknowledged only after both; a write that failed
//     in between is not acknowledged, and the items it did not put are not skipped
//     by the next write of the list (below), which backtest-kit always sends again;
//   - the head only loses items by trimming: those below the Window-th highest
//     sortKey of the head itself, which have at least Window items above them
//     (a process trims a head once per Window items it put into it, and reads cut
//     the head to the window, so a head holds a few windows at most);
//   - a head without a meta document (an adopted @backtest-kit/mongo database, a
//     window raised) is rebuilt from the item collection, once, before it is read:
//     the Window highest items are added with $setOnInsert, so a copy a writer put
//     meanwhile is never replaced by an older one.
//
// Which items a write may skip as unchanged is learned from the list hash in Redis
// (listhash.go, filled only after both steps succeeded) or, when that is not known,
// from a built head: an item is skipped only when its head copy has the same content
// hash. An item outside the head is written again (an idempotent upsert; a duplicate
// for insert-only Log), which costs little and never asks the item collection, whose
// $in queries scan the whole history on FerretDB. Before the head is built, the item
// collection is asked, as the rebuild will copy the window from it.

// fieldSortKey is the head document's copy of the item's sort field.
const fieldSortKey = "sortKey"

// fieldWindow is the meta document's window: the head holds at least that many of
// the highest items (all of them when the list is shorter).
const fieldWindow = "window"

// headMetaID is the item id of a head's meta document; item ids are never empty.
const headMetaID = ""

// DefaultHeadRebuildTimeout bounds one rebuild of a head from its item collection.
const DefaultHeadRebuildTimeout = 10 * time.Minute

// rebuildBatch is the cursor batch of a head rebuild's scan.
const rebuildBatch = 1000

// Window is the number of items a list read of the kind returns: the tenant's
// window (Options.ListWindows), never below the consumer's cap. 0 for other kinds.
func (s *Store) Window(kind Kind) int {
	spec, ok := Lookup(kind)
	if !ok || spec.Head == nil {
		return 0
	}
	return max(s.opts.ListWindows[kind], spec.Head.Window)
}

// headState is a store's per-process knowledge of its heads.
type headState struct {
	mu       sync.Mutex
	indexed  map[Kind]bool
	rebuilds map[string]*rebuildCall
	// grown counts the items this process put into each head since it last trimmed
	// it: a head is trimmed once per window of new items, not on every write, so it
	// holds at most about one window per writing process beyond the window.
	grown map[string]int
}

// grew adds n put items to a head's count and reports whether it is time to trim.
func (h *headState) grew(key string, n, window int) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.grown[key] += n
	if h.grown[key] < window {
		return false
	}
	delete(h.grown, key)
	return true
}

// headKey names a list context in the store's per-process maps.
func (s *Store) headKey(c *call) string {
	return string(c.spec.Kind) + "\x00" + s.keys.record(c.spec.Kind, c.parts)
}

type rebuildCall struct {
	done chan struct{}
	err  error
}

// sortKeyJSON reads an item's sort field from its JSON: a number, or 0 (absent,
// null, another type), as backtest-kit's comparators treat a missing field.
func sortKeyJSON(raw []byte, field string) float64 {
	lit, ok := topLevelField(raw, field)
	if !ok || len(lit) == 0 || !(lit[0] == '-' || (lit[0] >= '0' && lit[0] <= '9')) {
		return 0
	}
	f, err := strconv.ParseFloat(string(lit), 64)
	if err != nil {
		return 0
	}
	return f
}

// sortKeyBSON reads the sort field of a stored payload (adopted documents may hold
// int32, int64 or double).
func sortKeyBSON(payload bsoncore.Value, field string) float64 {
	doc, ok := payload.DocumentOK()
	if !ok {
		return 0
	}
	v, err := doc.LookupErr(field)
	if err != nil {
		return 0
	}
	switch v.Type {
	case bsoncore.TypeInt32, bsoncore.TypeInt64, bsoncore.TypeDouble:
		f, _ := v.AsFloat64OK()
		return f
	}
	return 0
}

func (s *Store) headColl(spec *KindSpec) *mongo.Collection {
	return s.opts.Database.Collection(spec.Head.Collection)
}

// headFilter is the filter of a head document of the call's list context.
func headFilter(c *call, id any) bson.D {
	return append(c.mongoFilter(), bson.E{Key: c.spec.ItemField.Doc, Value: id})
}

// ensureHeadIndex creates the head collection's unique index (list context, item
// id) once per process; the upserts rely on it. The head collection is not an
// @backtest-kit/mongo collection, so it is the store's to create.
func (s *Store) ensureHeadIndex(ctx context.Context, c *call) error {
	s.heads.mu.Lock()
	done := s.heads.indexed[c.spec.Kind]
	s.heads.mu.Unlock()
	if done {
		return nil
	}
	keys := bson.D{}
	for _, f := range c.spec.UniqueKey() {
		keys = append(keys, bson.E{Key: f, Value: 1})
	}
	m := mongo.IndexModel{Keys: keys, Options: options.Index().SetName(c.spec.UniqueIndexName()).SetUnique(true)}
	if _, err := s.headColl(c.spec).Indexes().CreateOne(ctx, m); err != nil && !indexExists(err) {
		return wrapMongo(c, "create head index", err)
	}
	s.heads.mu.Lock()
	s.heads.indexed[c.spec.Kind] = true
	s.heads.mu.Unlock()
	return nil
}

// encodeItems encodes the payloads of items in place (once for the head and the items).
func encodeItems(items []listItem) error {
	for i := range items {
		if items[i].enc != nil {
			continue
		}
		p, err := encodePayload(items[i].raw)
		if err != nil {
			return err
		}
		items[i].enc = &p
	}
	return nil
}

// headFields are the stored fields of a head copy of an item.
func headFields(spec *KindSpec, payload bsoncore.Value, encoding int, hash string, key float64, version int64, now time.Time) bson.D {
	d := bson.D{{Key: spec.PayloadField, Value: bson.RawValue{Type: bson.Type(payload.Type), Value: payload.Data}},
		{Key: fieldHash, Value: hash}, {Key: fieldSortKey, Value: key}, {Key: fieldUpdateDate, Value: now}}
	if version > 0 {
		d = append(d, bson.E{Key: fieldVersion, Value: version})
	}
	if encoding == encodingEscaped {
		d = append(d, bson.E{Key: fieldEncoding, Value: int32(encodingEscaped)})
	}
	return d
}

// headFieldsOfItem is headFields of an item document as stored (its payload, hash,
// encoding and sort field), with the given version, and the payload's encoding; ok is
// false for a document without a payload.
func headFieldsOfItem(spec *KindSpec, doc bsoncore.Document, version int64, now time.Time) (fields bson.D, encoding int, ok bool) {
	p, err := doc.LookupErr(spec.PayloadField)
	if err != nil {
		return nil, 0, false
	}
	hash, _ := doc.Lookup(fieldHash).StringValueOK()
	encoding = int(docInt(doc, fieldEncoding))
	return headFields(spec, p, encoding, hash, sortKeyBSON(p, spec.Head.SortField), version, now), encoding, true
}

// knownHashes returns the content hashes a write without a usable list hash may
// skip by: those of the head copies of the given ids when the head was built for
// the window (one query on the head, which also fetches the meta document), else
// those the item collection holds (the next read rebuilds the head from it).
func (s *Store) knownHashes(ctx context.Context, c *call, ids []string) (map[string]string, error) {
	idField := c.spec.ItemField.Doc
	in := make(bson.A, 0, len(ids)+1)
	in = append(in, headMetaID)
	for _, id := range ids {
		in = append(in, id)
	}
	cur, err := s.headColl(c.spec).Find(ctx, headFilter(c, bson.D{{Key: "$in", Value: in}}), options.Find().SetBatchSize(10_000).
		SetProjection(bson.D{{Key: "_id", Value: 0}, {Key: idField, Value: 1}, {Key: fieldHash, Value: 1}, {Key: fieldWindow, Value: 1},
			{Key: fieldVersion, Value: 1}}))
	if err != nil {
		return nil, wrapMongo(c, "find head", err)
	}
	defer cur.Close(ctx)
	stored := make(map[string]string, len(ids))
	built := false
	for cur.Next(ctx) {
		id, _ := cur.Current.Lookup(idField).StringValueOK()
		if id == headMetaID {
			built = docInt(bsoncore.Document(cur.Current), fieldWindow) >= int64(s.Window(c.spec.Kind))
			continue
		}
		h, _ := cur.Current.Lookup(fieldHash).StringValueOK()
		stored[id] = h
		if v := docInt(bsoncore.Document(cur.Current), fieldVersion); v > 0 && !c.spec.InsertOnly {
			s.hints.put(s.itemHintKey(c, id), v) // the copy's version: the next write's hint
		}
	}
	if err := cur.Err(); err != nil {
		return nil, wrapMongo(c, "find head", err)
	}
	if !built {
		return s.storedHashes(ctx, c, ids)
	}
	return stored, nil
}

// headPut copies new and changed items into the head, after they were committed,
// so that the head holds what the item collection holds whatever the interleaving
// of two writers of one item:
//   - upsert kinds: a copy replaces only a copy of a lower item version (or one
//     without a version, written before versions were copied);
//   - insert-only kinds: an item this write inserted is copied as sent; an item
//     that was stored already (another writer's, or this write's own retry after a
//     failure between items and head) is copied as stored, read back, and only
//     where the head has no copy of it.
func (s *Store) headPut(ctx context.Context, c *call, todo []listItem, written itemWrites) error {
	if len(todo) == 0 {
		return nil
	}
	if err := s.ensureHeadIndex(ctx, c); err != nil {
		return err
	}
	now := time.Now().UTC()
	models := make([]mongo.WriteModel, 0, len(todo))
	if c.spec.InsertOnly {
		var already []string
		for i, it := range todo {
			if written.stored[i] {
				already = append(already, it.id)
				continue
			}
			fields := headFields(c.spec, it.enc.Value, it.enc.Encoding, it.hash, sortKeyJSON(it.raw, c.spec.Head.SortField), 0, now)
			models = append(models, mongo.NewUpdateOneModel().SetFilter(headFilter(c, it.id)).
				SetUpdate(headSet(fields, it.enc.Encoding)).SetUpsert(true))
		}
		if len(already) > 0 {
			stored, err := s.storedItems(ctx, c, already)
			if err != nil {
				return err
			}
			for _, d := range stored {
				id, _ := d.Lookup(c.spec.ItemField.Doc).StringValueOK()
				fields, _, ok := headFieldsOfItem(c.spec, d, 0, now)
				if !ok {
					continue
				}
				models = append(models, mongo.NewUpdateOneModel().SetFilter(headFilter(c, id)).
					SetUpdate(bson.D{{Key: "$setOnInsert", Value: fields}}).SetUpsert(true))
			}
		}
		return s.bulkUpsert(ctx, c, s.headColl(c.spec), models, "head upsert")
	}
	for i, it := range todo {
		v := written.versions[i]
		fields := headFields(c.spec, it.enc.Value, it.enc.Encoding, it.hash, sortKeyJSON(it.raw, c.spec.Head.SortField), v, now)
		filter := append(headFilter(c, it.id), bson.E{Key: fieldVersion, Value: bson.D{{Key: "$not", Value: bson.D{{Key: "$gte", Value: v}}}}})
		models = append(models, mongo.NewUpdateOneModel().SetFilter(filter).SetUpdate(headSet(fields, it.enc.Encoding)).SetUpsert(true))
	}
	refused, err := s.versionedUpsert(ctx, c, s.headColl(c.spec), models, "head upsert")
	if err != nil || len(refused) == 0 {
		return err
	}
	ids := make([]string, len(refused))
	for i, k := range refused {
		ids[i] = todo[k].id
	}
	return s.repairHeadCopies(ctx, c, ids)
}

// repairHeadCopies settles head copies that refused a write's copy twice: such a
// copy holds a version at least the write's. It is newer when the item's version in
// the item collection is at least the copy's. When the item's version is lower (the
// item was deleted and written again, so its versions started over, while its head
// copy survived: a retention step cut between its two deletes, or a delete behind
// the store's back), the copy is stale and is replaced by the item as stored, on
// the condition that it is still that copy.
func (s *Store) repairHeadCopies(ctx context.Context, c *call, ids []string) error {
	items, head := s.opts.Database.Collection(c.spec.Collection), s.headColl(c.spec)
	proj := bson.D{{Key: "_id", Value: 0}, {Key: c.spec.PayloadField, Value: 1}, {Key: fieldEncoding, Value: 1},
		{Key: fieldHash, Value: 1}, {Key: fieldVersion, Value: 1}}
	for _, id := range ids {
		raw, err := items.FindOne(ctx, headFilter(c, id), options.FindOne().SetProjection(proj)).Raw()
		if errors.Is(err, mongo.ErrNoDocuments) {
			continue // deleted meanwhile: nothing to copy
		}
		if err != nil {
			return wrapMongo(c, "head repair: find item", err)
		}
		item := bsoncore.Document(raw)
		hraw, err := head.FindOne(ctx, headFilter(c, id), options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 0}, {Key: fieldVersion, Value: 1}})).Raw()
		if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
			return wrapMongo(c, "head repair: find copy", err)
		}
		iv := docInt(item, fieldVersion)
		filter := headFilter(c, id)
		missing := err != nil
		if !missing {
			hv := docInt(bsoncore.Document(hraw), fieldVersion)
			if iv >= hv {
				continue // the copy is as new as the item, or newer: another writer's
			}
			filter = append(filter, bson.E{Key: fieldVersion, Value: hv})
		} else {
			// The copy went meanwhile (a trim): put the item as stored, unless a
			// writer puts a newer copy first.
			filter = append(filter, bson.E{Key: fieldVersion, Value: bson.D{{Key: "$not", Value: bson.D{{Key: "$gte", Value: iv}}}}})
		}
		fields, enc, ok := headFieldsOfItem(c.spec, item, iv, time.Now().UTC())
		if !ok {
			continue
		}
		_, err = head.UpdateOne(ctx, filter, headSet(fields, enc), options.UpdateOne().SetUpsert(missing))
		if err != nil && !isUpsertConflict(err) { // a conflict: a writer put a newer copy first
			return wrapMongo(c, "head repair", err)
		}
	}
	return nil
}

// headSet replaces a head copy with fields.
func headSet(fields bson.D, encoding int) bson.D {
	var update bson.D
	if encoding != encodingEscaped {
		update = bson.D{{Key: "$unset", Value: bson.D{{Key: fieldEncoding, Value: ""}}}}
	}
	return append(update, bson.E{Key: "$set", Value: fields})
}

// storedItems reads the stored items of the given ids from the item collection.
func (s *Store) storedItems(ctx context.Context, c *call, ids []string) ([]bsoncore.Document, error) {
	in := make(bson.A, len(ids))
	for i, id := range ids {
		in[i] = id
	}
	idField := c.spec.ItemField.Doc
	filter := append(append(bson.D{}, c.mongoFilter()...), bson.E{Key: idField, Value: bson.D{{Key: "$in", Value: in}}})
	return s.findAll(ctx, c, filter, bson.D{{Key: "_id", Value: 0}, {Key: idField, Value: 1}, {Key: c.spec.PayloadField, Value: 1},
		{Key: fieldEncoding, Value: 1}, {Key: fieldHash, Value: 1}}, nil)
}

// versionedUpsert runs upserts whose filters match only an older copy (or none).
// A duplicate-key error is either the race of two inserts of a new copy (FerretDB)
// or a copy of a version at least the write's being there: the refused upserts are
// sent once more, and those refused again are returned (indices into models).
func (s *Store) versionedUpsert(ctx context.Context, c *call, coll *mongo.Collection, models []mongo.WriteModel, what string) ([]int, error) {
	var refused []int
	for start := 0; start < len(models); start += bulkChunk {
		idx := make([]int, 0, bulkChunk)
		for i := start; i < min(start+bulkChunk, len(models)); i++ {
			idx = append(idx, i)
		}
		for attempt := 1; len(idx) > 0; attempt++ {
			chunk := make([]mongo.WriteModel, len(idx))
			for i, k := range idx {
				chunk[i] = models[k]
			}
			_, err := coll.BulkWrite(ctx, chunk, options.BulkWrite().SetOrdered(false))
			if err == nil {
				break
			}
			if !onlyDuplicates(err) {
				return nil, wrapMongo(c, what, err)
			}
			var bwe mongo.BulkWriteException
			errors.As(err, &bwe)
			again := make([]int, 0, len(bwe.WriteErrors))
			for _, we := range bwe.WriteErrors {
				if we.Index >= 0 && we.Index < len(idx) {
					again = append(again, idx[we.Index])
				}
			}
			if attempt == 2 {
				refused = append(refused, again...)
				break
			}
			idx = again
		}
	}
	return refused, nil
}

// bulkUpsert runs upserts in unordered bulk calls of at most bulkChunk operations.
func (s *Store) bulkUpsert(ctx context.Context, c *call, coll *mongo.Collection, models []mongo.WriteModel, what string) error {
	for start := 0; start < len(models); start += bulkChunk {
		chunk := models[start:min(start+bulkChunk, len(models))]
		err := retryUpsert(ctx, &s.upsertRetries, func() error {
			_, err := coll.BulkWrite(ctx, chunk, options.BulkWrite().SetOrdered(false))
			return err
		})
		if err != nil {
			return wrapMongo(c, what, err)
		}
	}
	return nil
}

// headTrim drops the head copies below the window-th highest sortKey of the head.
// Each has at least window items above it, so none can be in the window of the
// item collection. A smaller window than the meta document's lowers it, so that a
// store with a larger window rebuilds rather than trusts a trimmed head.
func (s *Store) headTrim(ctx context.Context, c *call) error {
	w := s.Window(c.spec.Kind)
	coll := s.headColl(c.spec)
	items := headFilter(c, bson.D{{Key: "$ne", Value: headMetaID}})
	cur, err := coll.Find(ctx, items, options.Find().SetSort(bson.D{{Key: fieldSortKey, Value: -1}}).
		SetSkip(int64(w-1)).SetLimit(2).SetProjection(bson.D{{Key: "_id", Value: 0}, {Key: fieldSortKey, Value: 1}}))
	if err != nil {
		return wrapMongo(c, "head trim", err)
	}
	var rows []struct {
		SortKey float64 `bson:"sortKey"`
	}
	if err := cur.All(ctx, &rows); err != nil {
		return wrapMongo(c, "head trim", err)
	}
	if len(rows) < 2 || rows[1].SortKey >= rows[0].SortKey {
		return nil
	}
	below := append(items, bson.E{Key: fieldSortKey, Value: bson.D{{Key: "$lt", Value: rows[0].SortKey}}})
	res, err := coll.DeleteMany(ctx, below)
	if err != nil {
		return wrapMongo(c, "head trim", err)
	}
	if res.DeletedCount > 0 {
		_, err = coll.UpdateOne(ctx, headFilter(c, headMetaID), bson.D{{Key: "$min", Value: bson.D{{Key: fieldWindow, Value: int64(w)}}}})
		if err != nil {
			return wrapMongo(c, "head trim", err)
		}
	}
	return nil
}

// headItem is a head document as a read uses it.
type headItem struct {
	id      string
	key     float64
	payload bsoncore.Value
	escaped bool
}

// loadHead reads every document of the call's head: the items, and whether the
// meta document says the head was built for at least the store's window.
func (s *Store) loadHead(ctx context.Context, c *call) (items []headItem, built bool, err error) {
	idField := c.spec.ItemField.Doc
	cur, err := s.headColl(c.spec).Find(ctx, c.mongoFilter(), options.Find().SetBatchSize(10_000).
		SetProjection(bson.D{{Key: "_id", Value: 0}, {Key: idField, Value: 1}, {Key: c.spec.PayloadField, Value: 1},
			{Key: fieldEncoding, Value: 1}, {Key: fieldSortKey, Value: 1}, {Key: fieldWindow, Value: 1}}))
	if err != nil {
		return nil, false, wrapMongo(c, "find head", err)
	}
	defer cur.Close(ctx)
	w := int64(s.Window(c.spec.Kind))
	for cur.Next(ctx) {
		d := bsoncore.Document(append([]byte(nil), cur.Current...))
		id, _ := d.Lookup(idField).StringValueOK()
		if id == headMetaID {
			built = docInt(d, fieldWindow) >= w
			continue
		}
		p, err := d.LookupErr(c.spec.PayloadField)
		if err != nil {
			continue
		}
		key, _ := d.Lookup(fieldSortKey).AsFloat64OK()
		items = append(items, headItem{id: id, key: key, payload: p, escaped: docInt(d, fieldEncoding) == encodingEscaped})
	}
	if err := cur.Err(); err != nil {
		return nil, false, wrapMongo(c, "find head", err)
	}
	return items, built, nil
}

// readList returns the window of a list context: the Window items of highest sort
// field (fewer when the list is shorter), in ascending order of it (ties by id).
// One query on the head in the common case; a head that was never built for the
// window is rebuilt first (rebuildHead).
func (s *Store) readList(ctx context.Context, c *call) (Result, error) {
	items, built, err := s.loadHead(ctx, c)
	if err != nil {
		return Result{}, err
	}
	if !built {
		if err := s.awaitRebuild(ctx, c); err != nil {
			return Result{}, err
		}
		if items, _, err = s.loadHead(ctx, c); err != nil {
			return Result{}, err
		}
	}
	items = s.topOfHead(c, items)
	slices.Reverse(items)
	buf := make([]byte, 0, len(items)*256+2)
	buf = append(buf, '[')
	for i, it := range items {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = appendJSON(buf, it.payload, it.escaped)
	}
	return Result{Value: append(buf, ']')}, nil
}

// topOfHead returns the window of a head's items: the Window of highest sort key
// (ties by id), highest first.
func (s *Store) topOfHead(c *call, items []headItem) []headItem {
	slices.SortFunc(items, func(a, b headItem) int {
		if r := cmp.Compare(b.key, a.key); r != 0 {
			return r
		}
		return cmp.Compare(a.id, b.id)
	})
	items = slices.CompactFunc(items, func(a, b headItem) bool { return a.id == b.id })
	if w := s.Window(c.spec.Kind); len(items) > w {
		items = items[:w]
	}
	return items
}

// awaitRebuild waits for the rebuild of the call's head, starting it when none is
// running in this process. The rebuild is not bound to the caller: on a large
// adopted collection it may take longer than one operation, and a caller that
// gives up gets ErrUnavailable (retry) while the rebuild goes on.
func (s *Store) awaitRebuild(ctx context.Context, c *call) error {
	rc, err := s.startRebuild(c)
	if err != nil {
		return err
	}
	select {
	case <-rc.done:
		return rc.err
	case <-ctx.Done():
		return fmt.Errorf("%w: %s list head is being rebuilt from the stored items; retry", ErrUnavailable, c.spec.Kind)
	}
}

func (s *Store) startRebuild(c *call) (*rebuildCall, error) {
	key := s.headKey(c)
	s.initMu.Lock()
	defer s.initMu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("%w: store is closed", ErrUnavailable)
	}
	s.heads.mu.Lock()
	defer s.heads.mu.Unlock()
	if rc := s.heads.rebuilds[key]; rc != nil {
		return rc, nil
	}
	rc := &rebuildCall{done: make(chan struct{})}
	s.heads.rebuilds[key] = rc
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), s.opts.HeadRebuildTimeout)
		defer cancel()
		go func() {
			select {
			case <-s.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		rc.err = s.rebuildHead(ctx, c)
		s.heads.mu.Lock()
		delete(s.heads.rebuilds, key)
		s.heads.mu.Unlock()
		close(rc.done)
	}()
	return rc, nil
}

// rankedDoc is an item document kept by a rebuild, with its sort key.
type rankedDoc struct {
	key float64
	doc bsoncore.Document
}

// minHeap keeps the highest items seen so far; its root is the lowest of them.
type minHeap []rankedDoc

func (h minHeap) Len() int           { return len(h) }
func (h minHeap) Less(i, j int) bool { return h[i].key < h[j].key }
func (h minHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *minHeap) Push(x any)        { *h = append(*h, x.(rankedDoc)) }
func (h *minHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// rebuildHead builds a head from the item collection: one scan of the list
// context that keeps the window's highest items, their copies added to the head
// without replacing newer ones, then the meta document, then a trim.
func (s *Store) rebuildHead(ctx context.Context, c *call) error {
	if err := s.ensureHeadIndex(ctx, c); err != nil {
		return err
	}
	w := s.Window(c.spec.Kind)
	idField := c.spec.ItemField.Doc
	cur, err := s.opts.Database.Collection(c.spec.Collection).Find(ctx, c.mongoFilter(), options.Find().SetBatchSize(rebuildBatch).
		SetProjection(bson.D{{Key: "_id", Value: 0}, {Key: idField, Value: 1}, {Key: c.spec.PayloadField, Value: 1},
			{Key: fieldEncoding, Value: 1}, {Key: fieldHash, Value: 1}, {Key: fieldVersion, Value: 1}}))
	if err != nil {
		return wrapMongo(c, "rebuild head: find", err)
	}
	defer cur.Close(ctx)
	top := make(minHeap, 0, w)
	for cur.Next(ctx) {
		p, err := cur.Current.LookupErr(c.spec.PayloadField)
		if err != nil {
			continue
		}
		key := sortKeyBSON(bsoncore.Value{Type: bsoncore.Type(p.Type), Data: p.Value}, c.spec.Head.SortField)
		if len(top) == w && key <= top[0].key {
			continue
		}
		rd := rankedDoc{key: key, doc: bsoncore.Document(append([]byte(nil), cur.Current...))}
		if len(top) < w {
			heap.Push(&top, rd)
		} else {
			top[0] = rd
			heap.Fix(&top, 0)
		}
	}
	if err := cur.Err(); err != nil {
		return wrapMongo(c, "rebuild head: find", err)
	}
	now := time.Now().UTC()
	models := make([]mongo.WriteModel, 0, len(top))
	for _, rd := range top {
		id, ok := rd.doc.Lookup(idField).StringValueOK()
		if !ok || id == headMetaID {
			continue
		}
		fields, _, ok := headFieldsOfItem(c.spec, rd.doc, docInt(rd.doc, fieldVersion), now)
		if !ok {
			continue
		}
		models = append(models, mongo.NewUpdateOneModel().SetFilter(headFilter(c, id)).
			SetUpdate(bson.D{{Key: "$setOnInsert", Value: fields}}).SetUpsert(true))
	}
	coll := s.headColl(c.spec)
	if err := s.bulkUpsert(ctx, c, coll, models, "rebuild head: upsert"); err != nil {
		return err
	}
	meta := bson.D{{Key: "$set", Value: bson.D{{Key: fieldWindow, Value: int64(w)}, {Key: fieldUpdateDate, Value: now}}}}
	err = retryUpsert(ctx, &s.upsertRetries, func() error {
		_, err := coll.UpdateOne(ctx, headFilter(c, headMetaID), meta, options.UpdateOne().SetUpsert(true))
		return err
	})
	if err != nil {
		return wrapMongo(c, "rebuild head: meta", err)
	}
	return s.headTrim(ctx, c)
}
