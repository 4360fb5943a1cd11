package persist

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// seedLog inserts n log lines in the public layout, last written age ago, priority 1..n.
func seedLog(t testing.TB, f *fixture, n int, age time.Duration) {
	t.Helper()
	at := time.Now().Add(-age).UTC()
	docs := make([]any, 0, n)
	for i := range n {
		id := fmt.Sprintf("l%05d", i)
		docs = append(docs, bson.D{{Key: "entryId", Value: id}, {Key: "payload", Value: bson.D{{Key: "id", Value: id}, {Key: "priority", Value: int64(i + 1)}}},
			{Key: "createDate", Value: at}, {Key: "updatedDate", Value: at}})
	}
	if _, err := f.db.Collection("log-items").InsertMany(context.Background(), docs, options.InsertMany().SetOrdered(false)); err != nil {
		t.Fatal(err)
	}
}

// Retention prunes in steps of at most the limit, never an item of the window, and
// refuses a maxItems below the window.
func TestPruneKeepsTheWindow(t *testing.T) {
	for _, cache := range []bool{true, false} {
		t.Run(fmt.Sprintf("cache=%v", cache), func(t *testing.T) {
			f := newFixture(t, storeConfig{cache: cache})
			seedLog(t, f, 1500, 2*time.Hour)
			ctx := context.Background()
			if _, err := f.store.Prune(ctx, KindLog, map[string]any{}, RetentionPolicy{MaxItems: 999}, 100); err == nil {
				t.Fatal("maxItems below the window accepted")
			}
			var steps []int64
			for {
				res, err := f.store.Prune(ctx, KindLog, map[string]any{}, RetentionPolicy{MaxAge: time.Hour}, 200)
				if err != nil {
					t.Fatal(err)
				}
				steps = append(steps, res.Pruned)
				if res.Pruned > 200 {
					t.Fatalf("a step of 200 pruned %d", res.Pruned)
				}
				if !res.More {
					break
				}
			}
			n, _ := f.db.Collection("log-items").CountDocuments(ctx, bson.D{})
			if n != 1000 {
				t.Fatalf("after steps %v: %d log lines stored, want the window of 1000", steps, n)
			}
			expectTopKeys(t, "window after retention", sortKeysOf(t, logSpec(), f.do(Request{Kind: KindLog, Op: OpRead}).Value), 500, 1500)
		})
	}
}

func logSpec() *KindSpec {
	s, _ := Lookup(KindLog)
	return s
}

// A head rebuild that outlasts a step's deadline still completes, so the next step
// prunes; bound by the deadline, every step started the same full scan over and never
// finished (a 200,000-item adopted list takes longer than the controller's minute).
func TestPruneBuildsTheHeadPastItsDeadline(t *testing.T) {
	f := newFixture(t, storeConfig{cache: true})
	seedLog(t, f, 1200, 2*time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	f.store.beforePruneRebuild = func() { <-ctx.Done() } // the step's budget is spent before the rebuild
	if _, err := f.store.Prune(ctx, KindLog, map[string]any{}, RetentionPolicy{MaxAge: time.Hour}, 100); err == nil {
		t.Fatal("a step whose deadline passed reported success")
	}
	f.store.beforePruneRebuild = nil
	c, err := f.store.validate(&Request{Kind: KindLog, Op: OpRead, Key: map[string]any{}})
	if err != nil {
		t.Fatal(err)
	}
	if _, built, err := f.store.loadHead(context.Background(), c); err != nil || !built {
		t.Fatalf("head built: %v, %v; want the rebuild finished past the step's deadline", built, err)
	}
	res, err := f.store.Prune(context.Background(), KindLog, map[string]any{}, RetentionPolicy{MaxAge: time.Hour}, 100)
	if err != nil || res.Pruned != 100 {
		t.Fatalf("next step: %+v, %v; want 100 pruned", res, err)
	}
}
