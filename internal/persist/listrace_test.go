package persist

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// Two replicas write one list item at the same time: each write commits the item,
// then its head copy, and the head copies may land in the other order than the
// items. Whatever the interleaving, a read returns what the item collection holds
// (the write that won there), never the loser's content. For an upsert kind the
// later item commit wins; for an insert-only kind (Log) the first insert does, and
// a writer whose item was already stored must not put its own content in the head.
func TestConcurrentWritersOfOneListItem(t *testing.T) {
	cases := []struct {
		kind Kind
		key  map[string]any
		item func(id, content string) map[string]any
		// seed is the item written before the race: the raced one for an upsert kind
		// (its head copy exists), another for an insert-only kind (written once).
		seed, id string
		// winner is the content the item collection ends with: the delayed writer
		// (A) committed its item first.
		winner string
	}{
		{KindStorage, keyOf("backtest", true), func(id, s string) map[string]any { return fxStorageRow(id, 5, s) }, "row-1", "row-1", "B"},
		{KindNotification, keyOf("backtest", true), func(id, s string) map[string]any {
			n := fxNotification(id, false)
			n["symbol"] = s
			return n
		}, "note-1", "note-1", "B"},
		{KindLog, map[string]any{}, func(id, s string) map[string]any {
			l := fxLogEntry(id, 5)
			l["topic"] = s
			return l
		}, "line-0", "line-1", "A"},
	}
	for _, cache := range []bool{true, false} {
		db, prefix := randomName("t_"), randomName("btp:")+":"
		a := newFixture(t, storeConfig{cache: cache, dbName: db, prefix: prefix})
		b := newFixture(t, storeConfig{cache: cache, dbName: db, prefix: prefix})
		for _, tc := range cases {
			t.Run(string(tc.kind)+map[bool]string{true: "/cache", false: "/nocache"}[cache], func(t *testing.T) {
				fa, fb := a.with(t), b.with(t)
				field := map[Kind]string{KindStorage: "status", KindNotification: "symbol", KindLog: "topic"}[tc.kind]
				write := func(f *fixture, id, content string) error {
					return f.doErr(Request{Kind: tc.kind, Op: OpWrite, Key: tc.key, Value: mustJSON([]any{tc.item(id, content)})})
				}
				// The head exists (built by a read), as on a running tenant.
				if err := write(fa, tc.seed, "seed"); err != nil {
					t.Fatal(err)
				}
				readEventually(t, fa.store, Request{Kind: tc.kind, Op: OpRead, Key: tc.key}, time.Minute)

				// A commits its item and stops before its head copy; B writes the whole
				// way; then A goes on.
				paused, resume := make(chan struct{}), make(chan struct{})
				var once sync.Once
				fa.store.beforeHeadPut = func() {
					once.Do(func() {
						close(paused)
						<-resume
					})
				}
				defer func() { fa.store.beforeHeadPut = nil }()
				errA := make(chan error, 1)
				go func() { errA <- write(fa, tc.id, "A") }()
				select {
				case <-paused:
				case err := <-errA:
					t.Fatalf("A returned before its head copy: %v", err)
				case <-time.After(30 * time.Second):
					t.Fatal("A never reached its head copy")
				}
				if err := write(fb, tc.id, "B"); err != nil {
					t.Fatalf("B: %v", err)
				}
				close(resume)
				if err := <-errA; err != nil {
					t.Fatalf("A: %v", err)
				}

				stored := storedItemField(t, fa, tc.kind, tc.key, tc.id, field)
				if stored != tc.winner {
					t.Fatalf("the item collection holds %q, want %q (the test's interleaving did not happen)", stored, tc.winner)
				}
				for name, f := range map[string]*fixture{"A": fa, "B": fb} {
					got := listItemField(t, f.do(Request{Kind: tc.kind, Op: OpRead, Key: tc.key}).Value, tc.id, field)
					if got != stored {
						t.Fatalf("a read through %s returns %q, the item collection holds %q", name, got, stored)
					}
				}
			})
		}
	}
}

// storedItemField is field of the payload of list item id, as MongoDB holds it.
func storedItemField(t *testing.T, f *fixture, kind Kind, key map[string]any, id, field string) string {
	t.Helper()
	spec, _ := Lookup(kind)
	filter := append(f.store.debugFilter(kind, key), bson.E{Key: spec.ItemField.Doc, Value: id})
	cur, err := f.db.Collection(spec.Collection).Find(context.Background(), filter)
	if err != nil {
		t.Fatal(err)
	}
	var docs []bson.Raw
	if err := cur.All(context.Background(), &docs); err != nil {
		t.Fatal(err)
	}
	if len(docs) != 1 {
		t.Fatalf("the item collection holds %d items %s, want 1", len(docs), id)
	}
	s, _ := docs[0].Lookup(spec.PayloadField, field).StringValueOK()
	return s
}

// listItemField is field of item id of a list read.
func listItemField(t *testing.T, raw []byte, id, field string) string {
	t.Helper()
	var items []map[string]any
	if err := json.Unmarshal(raw, &items); err != nil {
		t.Fatalf("list read %s: %v", short(string(raw)), err)
	}
	for _, it := range items {
		if it["id"] == id {
			s, _ := it[field].(string)
			return s
		}
	}
	t.Fatalf("list read %s has no item %s", short(string(raw)), id)
	return ""
}

// A log line resent with other content after its head copy was lost (a write that
// failed between the items and the head, or a trimmed line) is copied into the
// head as stored, not as resent.
func TestLogLineResentAfterItsHeadCopyWasLost(t *testing.T) {
	f := newFixture(t, storeConfig{cache: false})
	spec, _ := Lookup(KindLog)
	line := func(topic string) json.RawMessage {
		l := fxLogEntry("line-1", 5)
		l["topic"] = topic
		return mustJSON([]any{l})
	}
	f.do(Request{Kind: KindLog, Op: OpWrite, Key: map[string]any{}, Value: line("stored")})
	readEventually(t, f.store, Request{Kind: KindLog, Op: OpRead, Key: map[string]any{}}, time.Minute)
	c, _ := f.store.validate(&Request{Kind: KindLog, Op: OpRead, Key: map[string]any{}})
	if _, err := f.db.Collection(f.store.headColl(spec).Name()).DeleteOne(context.Background(), headFilter(c, "line-1")); err != nil {
		t.Fatal(err)
	}
	f.do(Request{Kind: KindLog, Op: OpWrite, Key: map[string]any{}, Value: line("resent")})
	if got := listItemField(t, f.do(Request{Kind: KindLog, Op: OpRead, Key: map[string]any{}}).Value, "line-1", "topic"); got != "stored" {
		t.Fatalf("read returns %q, the item collection holds %q", got, "stored")
	}
}

// An item deleted and written again starts its versions over; a head copy that
// survived the delete (a retention step cut between its two deletes, a delete
// behind the store's back) holds a higher version, and must not refuse the new
// item's copies for good.
func TestHeadCopyOfADeletedItemDoesNotOutliveIt(t *testing.T) {
	for _, cache := range []bool{true, false} {
		t.Run(map[bool]string{true: "cache", false: "nocache"}[cache], func(t *testing.T) {
			f := newFixture(t, storeConfig{cache: cache}).with(t)
			key := keyOf("backtest", true)
			write := func(status string) {
				f.do(Request{Kind: KindStorage, Op: OpWrite, Key: key, Value: mustJSON([]any{fxStorageRow("row-1", 5, status)})})
			}
			read := func() string {
				return listItemField(t, f.do(Request{Kind: KindStorage, Op: OpRead, Key: key}).Value, "row-1", "status")
			}
			write("one")
			readEventually(t, f.store, Request{Kind: KindStorage, Op: OpRead, Key: key}, time.Minute)
			write("two") // version 2, in the items and the head
			spec, _ := Lookup(KindStorage)
			filter := append(f.store.debugFilter(KindStorage, key), bson.E{Key: "signalId", Value: "row-1"})
			if _, err := f.db.Collection(spec.Collection).DeleteOne(context.Background(), filter); err != nil {
				t.Fatal(err)
			}
			write("three") // version 1 again
			if got := read(); got != "three" {
				t.Fatalf("read after the item was written again: %q, want %q", got, "three")
			}
			write("four")
			if got := read(); got != "four" {
				t.Fatalf("read after the next write: %q, want %q", got, "four")
			}
		})
	}
}
