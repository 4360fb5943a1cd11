package persist

import (
	"context"
	"fmt"
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
