package persist

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// A document without a version, or with version 0 of any numeric type (as other
// writers leave them), is at version 0: a write that knows no version applies to it
// at the first attempt, and a soft delete too.
func TestVersionZeroDocuments(t *testing.T) {
	for _, cached := range []bool{false, true} {
		t.Run(fmt.Sprintf("cache=%v", cached), func(t *testing.T) {
			f := newFixture(t, storeConfig{cache: cached})
			ctx := context.Background()
			versions := map[string]any{"missing": nil, "int32": int32(0), "int64": int64(0), "double": 0.0}
			for name, v := range versions {
				d := bson.D{{Key: "signalId", Value: name}, {Key: "bucketName", Value: "zero"},
					{Key: "payload", Value: bson.D{{Key: "n", Value: 1}}}}
				m := bson.D{{Key: "bucket", Value: "zero"}, {Key: "entryKey", Value: name},
					{Key: "payload", Value: bson.D{{Key: "id", Value: name}, {Key: "data", Value: 1}, {Key: "removed", Value: false}}}, {Key: "removed", Value: false}}
				if v != nil {
					d = append(d, bson.E{Key: "version", Value: v})
					m = append(m, bson.E{Key: "version", Value: v})
				}
				if _, err := f.db.Collection("state-items").InsertOne(ctx, d); err != nil {
					t.Fatal(err)
				}
				if _, err := f.db.Collection("measure-items").InsertOne(ctx, m); err != nil {
					t.Fatal(err)
				}
			}
			before := f.store.upsertRetries.Load()
			for name := range versions {
				key := keyOf("signalId", name, "bucketName", "zero")
				f.do(Request{Kind: KindState, Op: OpWrite, Key: key, Value: []byte(`{"n":2}`)})
				assertJSON(t, name, f.do(Request{Kind: KindState, Op: OpRead, Key: key}).Value, `{"n":2}`)
				mk := keyOf("bucket", "zero", "key", name)
				f.do(Request{Kind: KindMeasure, Op: OpRemove, Key: mk})
				if got := f.do(Request{Kind: KindMeasure, Op: OpRead, Key: mk}).Value; string(got) != "null" {
					t.Fatalf("%s: removed measure reads %s", name, got)
				}
			}
			if n := f.store.upsertRetries.Load() - before; n != 0 {
				t.Fatalf("%d version misses retried, want none", n)
			}
		})
	}
}

// A command at a version the document has moved past (a late write, run once) changes
// nothing, for a record and for a list item; at the current version it applies.
func TestStaleVersionChangesNothing(t *testing.T) {
	f := newFixture(t, storeConfig{cache: false})
	ctx := context.Background()
	gone, cancel := context.WithCancel(ctx)
	cancel() // the late command's caller is gone: one attempt, no retry
	key := keyOf("signalId", "stale", "bucketName", "v")
	f.do(Request{Kind: KindState, Op: OpWrite, Key: key, Value: []byte(`{"n":1}`)})
	f.do(Request{Kind: KindState, Op: OpWrite, Key: key, Value: []byte(`{"n":2}`)})
	filter := bson.D{{Key: "signalId", Value: "stale"}, {Key: "bucketName", Value: "v"}}
	update := bson.D{{Key: "$set", Value: bson.D{{Key: "payload", Value: bson.D{{Key: "n", Value: 99}}}}},
		{Key: "$inc", Value: bson.D{{Key: fieldVersion, Value: int64(1)}}}}
	coll := f.db.Collection("state-items")
	for _, hint := range []int64{versionUnknown, 1} {
		if _, err := f.store.versionedWrite(ctx, gone, coll, filter, update, hint, true, versionProjection); err == nil {
			t.Fatalf("a command at version %d applied over version 2", hint)
		}
	}
	assertJSON(t, "after the stale commands", f.do(Request{Kind: KindState, Op: OpRead, Key: key}).Value, `{"n":2}`)
	if _, err := f.store.versionedWrite(ctx, gone, coll, filter, update, 2, true, versionProjection); err != nil {
		t.Fatalf("a command at the current version: %v", err)
	}
	assertJSON(t, "at the current version", f.do(Request{Kind: KindState, Op: OpRead, Key: key}).Value, `{"n":99}`)

	// a list item: two writes of the item, then its first version's upsert again
	lkey := keyOf("backtest", true)
	f.do(Request{Kind: KindStorage, Op: OpWrite, Key: lkey, Value: mustJSON([]any{fxStorageRow("r1", 1, "opened")})})
	want := mustJSON([]any{fxStorageRow("r1", 2, "closed")})
	f.do(Request{Kind: KindStorage, Op: OpWrite, Key: lkey, Value: want})
	spec, _ := Lookup(KindStorage)
	ifilter := bson.D{{Key: "backtest", Value: true}, {Key: spec.ItemField.Doc, Value: "r1"}}
	iupdate := bson.D{{Key: "$set", Value: bson.D{{Key: spec.PayloadField, Value: "stale"}}}, {Key: "$inc", Value: bson.D{{Key: fieldVersion, Value: int64(1)}}}}
	if _, err := f.store.versionedWrite(ctx, gone, f.db.Collection(spec.Collection), ifilter, iupdate, 1, true, versionProjection); err == nil {
		t.Fatal("an item upsert at version 1 applied over version 2")
	}
	var doc bson.M
	if err := f.db.Collection(spec.Collection).FindOne(ctx, ifilter).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if doc[spec.PayloadField] == "stale" || doc[fieldVersion] != int64(2) {
		t.Fatalf("item after the stale upsert: %v", doc)
	}
}

// A list item upsert whose caller has left is not tried again at a version read
// anew: that retry would overwrite whatever was written meanwhile (through another
// replica, after the caller's own retry was acknowledged). Its first attempt, at the
// version it knew, misses and changes nothing.
func TestListItemNotRetriedAfterTheCallerLeft(t *testing.T) {
	f := newFixture(t, storeConfig{cache: false})
	ctx := context.Background()
	key := keyOf("backtest", true)
	f.do(Request{Kind: KindStorage, Op: OpWrite, Key: key, Value: mustJSON([]any{fxStorageRow("r1", 1, "opened")})})
	want := mustJSON([]any{fxStorageRow("r1", 2, "closed")})
	f.do(Request{Kind: KindStorage, Op: OpWrite, Key: key, Value: want}) // r1 at version 2
	req := Request{Kind: KindStorage, Op: OpWrite, Key: key, Value: mustJSON([]any{fxStorageRow("r1", 3, "stale")})}
	c, err := f.store.validate(&req)
	if err != nil {
		t.Fatal(err)
	}
	if err := encodeItems(c.items); err != nil {
		t.Fatal(err)
	}
	f.store.hints.put(f.store.itemHintKey(c, "r1"), 1) // what the late writer knew
	gone, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := f.store.writeListItems(ctx, gone, c, c.items); err == nil {
		t.Fatal("the late item upsert was applied")
	}
	spec, _ := Lookup(KindStorage)
	var doc bson.M
	if err := f.db.Collection(spec.Collection).FindOne(ctx, bson.D{{Key: "backtest", Value: true}, {Key: spec.ItemField.Doc, Value: "r1"}}).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if doc[fieldVersion] != int64(2) {
		t.Fatalf("item after the late upsert: version %v, want 2 (unchanged)", doc[fieldVersion])
	}
	assertJSON(t, "the list", f.do(Request{Kind: KindStorage, Op: OpRead, Key: key}).Value, string(want))
}

// A stored version that is not an integer fails the write with a clear error at
// once; an integral double is a version like any other.
func TestNonIntegerVersions(t *testing.T) {
	f := newFixture(t, storeConfig{cache: false})
	ctx := context.Background()
	for name, v := range map[string]any{"string": "x", "fraction": 1.5, "integral": 3.0} {
		d := bson.D{{Key: "signalId", Value: name}, {Key: "bucketName", Value: "odd"},
			{Key: "payload", Value: bson.D{{Key: "n", Value: 1}}}, {Key: "version", Value: v}}
		if _, err := f.db.Collection("state-items").InsertOne(ctx, d); err != nil {
			t.Fatal(err)
		}
		before := f.store.upsertRetries.Load()
		key := keyOf("signalId", name, "bucketName", "odd")
		_, err := f.store.Do(ctx, Request{Kind: KindState, Op: OpWrite, Key: key, Value: []byte(`{"n":2}`)})
		retries := f.store.upsertRetries.Load() - before
		if name == "integral" {
			if err != nil {
				t.Fatalf("version 3.0: %v", err)
			}
			assertJSON(t, name, f.do(Request{Kind: KindState, Op: OpRead, Key: key}).Value, `{"n":2}`)
			continue
		}
		if err == nil || !strings.Contains(err.Error(), "not an integer") || retries > 1 {
			t.Fatalf("version %v: %v after %d retries, want a clear error at once", v, err, retries)
		}
	}
}
