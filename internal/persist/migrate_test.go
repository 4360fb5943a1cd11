package persist

import (
	"context"
	"slices"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

func keys(fields ...string) []IndexKey {
	out := make([]IndexKey, 0, len(fields))
	for _, f := range fields {
		order := 1
		if f[0] == '-' {
			f, order = f[1:], -1
		}
		out = append(out, IndexKey{Field: f, Order: order})
	}
	return out
}

// summary renders a plan as "kind:name" strings in plan order.
func summary(p IndexPlan) []string {
	var out []string
	for _, a := range p.Actions {
		name := a.Index.Name
		if a.Kind == ActionDropLegacy || a.Kind == ActionLeaveUnknown || (a.Kind == ActionKeep && a.Existing != a.Index.Name) {
			name = a.Existing
		}
		out = append(out, a.Kind.String()+":"+name)
	}
	return out
}

func TestPlanIndexes(t *testing.T) {
	uniq := DesiredIndex{Name: "a_1_b_1", Keys: keys("a", "b"), Unique: true}
	list := DesiredIndex{Name: "a_1_createDate_-1", Keys: keys("a", "-createDate")}
	desired := []DesiredIndex{uniq, list}
	legacy := []LegacyIndex{{Keys: keys("b"), Unique: true, Why: "old"}}
	id := ListedIndex{Name: "_id_", Keys: keys("_id")}

	tests := []struct {
		name   string
		listed []ListedIndex
		want   []string
	}{
		{"empty collection", nil,
			[]string{"create:a_1_b_1", "create:a_1_createDate_-1"}},
		{"only _id", []ListedIndex{id},
			[]string{"create:a_1_b_1", "create:a_1_createDate_-1"}},
		{"all present is a no-op", []ListedIndex{id,
			{Name: "a_1_b_1", Keys: keys("a", "b"), Unique: true},
			{Name: "a_1_createDate_-1", Keys: keys("a", "-createDate")}},
			[]string{"keep:a_1_b_1", "keep:a_1_createDate_-1"}},
		{"equivalent index under another name is kept", []ListedIndex{
			{Name: "custom", Keys: keys("a", "b"), Unique: true},
			{Name: "a_1_createDate_-1", Keys: keys("a", "-createDate")}},
			[]string{"keep:custom", "keep:a_1_createDate_-1"}},
		{"owned name without unique is replaced", []ListedIndex{
			{Name: "a_1_b_1", Keys: keys("a", "b")},
			{Name: "a_1_createDate_-1", Keys: keys("a", "-createDate")}},
			[]string{"replace:a_1_b_1", "keep:a_1_createDate_-1"}},
		{"same keys other name, not unique, is replaced", []ListedIndex{
			{Name: "mongoose_made", Keys: keys("a", "b")}},
			[]string{"replace:a_1_b_1", "create:a_1_createDate_-1"}},
		{"owned name with other keys is replaced", []ListedIndex{
			{Name: "a_1_createDate_-1", Keys: keys("a", "createDate")}},
			[]string{"replace:a_1_createDate_-1", "create:a_1_b_1"}},
		{"owned index with extra options is replaced", []ListedIndex{
			{Name: "a_1_b_1", Keys: keys("a", "b"), Unique: true, Options: []string{"sparse"}},
			{Name: "a_1_createDate_-1", Keys: keys("a", "-createDate")}},
			[]string{"replace:a_1_b_1", "keep:a_1_createDate_-1"}},
		{"special key kind is replaced", []ListedIndex{
			{Name: "a_1_createDate_-1", Keys: []IndexKey{{Field: "a", Order: 0}, {Field: "createDate", Order: -1}}, Special: true}},
			[]string{"replace:a_1_createDate_-1", "create:a_1_b_1"}},
		{"legacy dropped after creates", []ListedIndex{
			{Name: "b_1", Keys: keys("b"), Unique: true}},
			[]string{"create:a_1_b_1", "create:a_1_createDate_-1", "drop-legacy:b_1"}},
		{"legacy keys without unique are unknown, not legacy", []ListedIndex{
			{Name: "b_1", Keys: keys("b")}},
			[]string{"create:a_1_b_1", "create:a_1_createDate_-1", "leave-unknown:b_1"}},
		{"unknown indexes are left alone", []ListedIndex{id,
			{Name: "a_1_b_1", Keys: keys("a", "b"), Unique: true},
			{Name: "a_1_createDate_-1", Keys: keys("a", "-createDate")},
			{Name: "mine", Keys: keys("z")}, {Name: "text", Keys: []IndexKey{{Field: "t", Order: 0}}, Special: true}},
			[]string{"keep:a_1_b_1", "keep:a_1_createDate_-1", "leave-unknown:mine", "leave-unknown:text"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := summary(PlanIndexes("c", desired, legacy, tc.listed))
			if !slices.Equal(got, tc.want) {
				t.Fatalf("plan = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestPlanChanges(t *testing.T) {
	d := []DesiredIndex{{Name: "a_1", Keys: keys("a"), Unique: true}}
	if PlanIndexes("c", d, nil, []ListedIndex{{Name: "a_1", Keys: keys("a"), Unique: true}, {Name: "x", Keys: keys("x")}}).Changes() {
		t.Fatal("a plan of keeps and unknowns reports changes")
	}
	if !PlanIndexes("c", d, nil, nil).Changes() {
		t.Fatal("a plan with a create reports no changes")
	}
}

func TestDesiredIndexesFollowTheTable(t *testing.T) {
	for i := range Kinds {
		spec := &Kinds[i]
		got := DesiredIndexes(spec)
		if len(got) != 1+len(spec.Indexes) {
			t.Fatalf("%s: %d desired indexes, want %d", spec.Kind, len(got), 1+len(spec.Indexes))
		}
		if !got[0].Unique || got[0].Name != spec.UniqueIndexName() || len(got[0].Keys) != len(spec.UniqueKey()) {
			t.Fatalf("%s: unique index %+v does not match the table", spec.Kind, got[0])
		}
		for _, d := range got[1:] {
			if d.Unique {
				t.Fatalf("%s: secondary index %s is unique", spec.Kind, d.Name)
			}
		}
	}
	candle, _ := Lookup(KindCandle)
	if want := []string{"exchangeName", "symbol", "interval", "timestamp"}; !slices.Equal(candle.UniqueKey(), want) {
		t.Fatalf("candle unique key %v, want %v", candle.UniqueKey(), want)
	}
	// @backtest-kit/mongo 20.1.0: DictionarySchema.index({signalId: 1, dictionaryName: 1}, {unique: true}) on "dictionary-items".
	dict, ok := Lookup(KindDictionary)
	if !ok || dict.Collection != "dictionary-items" || !slices.Equal(dict.UniqueKey(), []string{"signalId", "dictionaryName"}) ||
		dict.UniqueIndexName() != "signalId_1_dictionaryName_1" {
		t.Fatalf("dictionary layout %+v, unique key %v", dict, dict.UniqueKey())
	}
}

func TestParseListedIndex(t *testing.T) {
	raw := func(d bson.D) bson.Raw {
		b, err := bson.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name string
		doc  bson.D
		want ListedIndex
	}{
		{"int32 orders and unique", bson.D{bson.E{Key: "v", Value: int32(2)}, bson.E{Key: "key", Value: bson.D{bson.E{Key: "a", Value: int32(1)}, bson.E{Key: "b", Value: int32(-1)}}}, bson.E{Key: "name", Value: "a_1_b_-1"}, bson.E{Key: "unique", Value: true}},
			ListedIndex{Name: "a_1_b_-1", Keys: keys("a", "-b"), Unique: true}},
		{"double and int64 orders", bson.D{bson.E{Key: "key", Value: bson.D{bson.E{Key: "a", Value: 1.0}, bson.E{Key: "b", Value: int64(-1)}}}, bson.E{Key: "name", Value: "n"}},
			ListedIndex{Name: "n", Keys: keys("a", "-b")}},
		{"false flags are absent", bson.D{bson.E{Key: "key", Value: bson.D{bson.E{Key: "a", Value: 1}}}, bson.E{Key: "name", Value: "n"}, bson.E{Key: "sparse", Value: false}, bson.E{Key: "background", Value: true}},
			ListedIndex{Name: "n", Keys: keys("a")}},
		{"options are recorded", bson.D{bson.E{Key: "key", Value: bson.D{bson.E{Key: "a", Value: 1}}}, bson.E{Key: "name", Value: "n"}, bson.E{Key: "sparse", Value: true}, bson.E{Key: "expireAfterSeconds", Value: 5}},
			ListedIndex{Name: "n", Keys: keys("a"), Options: []string{"sparse", "expireAfterSeconds"}}},
		{"text index is special", bson.D{bson.E{Key: "key", Value: bson.D{bson.E{Key: "t", Value: "text"}}}, bson.E{Key: "name", Value: "t_text"}},
			ListedIndex{Name: "t_text", Keys: []IndexKey{{Field: "t", Order: 0}}, Special: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseListedIndex(raw(tc.doc))
			if err != nil {
				t.Fatal(err)
			}
			if got.Name != tc.want.Name || got.Unique != tc.want.Unique || got.Special != tc.want.Special ||
				!slices.Equal(got.Keys, tc.want.Keys) || !slices.Equal(got.Options, tc.want.Options) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestMigrateIndexesOnServer runs the migration against the test server: a fresh
// database, a database with the legacy candle index, a conflicting owned index and
// an unknown index, and a re-run.
func TestMigrateIndexesOnServer(t *testing.T) {
	m, _ := servers(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	client, err := mongo.Connect(options.Client().ApplyURI(m.URI()).SetMaxPoolSize(8))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = client.Disconnect(context.Background()) }()
	db := client.Database(randomName("migrate_"))
	defer func() { _ = db.Drop(context.Background()) }()

	candles := db.Collection("candle-items")
	mustCreate := func(coll *mongo.Collection, name string, k bson.D, unique bool) {
		t.Helper()
		o := options.Index().SetName(name)
		if unique {
			o.SetUnique(true)
		}
		if _, err := coll.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: k, Options: o}); err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
	}
	// The older layout, and an index a user added.
	mustCreate(candles, "symbol_1_interval_1_timestamp_1", bson.D{bson.E{Key: "symbol", Value: 1}, bson.E{Key: "interval", Value: 1}, bson.E{Key: "timestamp", Value: 1}}, true)
	mustCreate(candles, "user_volume", bson.D{bson.E{Key: "volume", Value: -1}}, false)
	// An owned name whose options conflict (not unique).
	signal, _ := Lookup(KindSignal)
	mustCreate(db.Collection(signal.Collection), signal.UniqueIndexName(), bson.D{bson.E{Key: "symbol", Value: 1}, bson.E{Key: "strategyName", Value: 1}, bson.E{Key: "exchangeName", Value: 1}}, false)

	total := 0
	for i := range Kinds {
		total += len(DesiredIndexes(&Kinds[i]))
	}
	sum, err := MigrateIndexes(ctx, db, Kinds)
	if err != nil {
		t.Fatalf("migrate: %v (summary %+v)", err, sum)
	}
	// Replaced: the signal index and the legacy candle index.
	if sum.Created != total-1 || sum.Replaced != 2 || sum.Unchanged != 0 || sum.Failed != 0 || sum.Unknown != 1 {
		t.Fatalf("first run summary %+v, want created %d, replaced 2, unknown 1", sum, total-1)
	}

	for i := range Kinds {
		spec := &Kinds[i]
		listed, err := ListIndexes(ctx, db.Collection(spec.Collection))
		if err != nil {
			t.Fatal(err)
		}
		plan := PlanIndexes(spec.Collection, DesiredIndexes(spec), legacyIndexes[spec.Kind], listed)
		if plan.Changes() {
			t.Fatalf("%s after migration: plan %v", spec.Collection, summary(plan))
		}
		byName := map[string]ListedIndex{}
		for _, l := range listed {
			byName[l.Name] = l
		}
		if u := byName[spec.UniqueIndexName()]; !u.Unique || !slices.Equal(u.Keys, DesiredIndexes(spec)[0].Keys) {
			t.Fatalf("%s: unique index is %+v", spec.Collection, u)
		}
		if spec.Kind == KindDictionary && !slices.Equal(byName["signalId_1_dictionaryName_1"].Keys, keys("signalId", "dictionaryName")) {
			t.Fatalf("dictionary-items indexes after migration: %+v", listed)
		}
		if spec.Kind == KindCandle {
			if _, ok := byName["symbol_1_interval_1_timestamp_1"]; ok {
				t.Fatal("legacy candle index survived")
			}
			if _, ok := byName["user_volume"]; !ok {
				t.Fatal("unknown index was dropped")
			}
		}
	}

	// The repaired candle index lets two exchanges store the same symbol and time.
	for _, ex := range []string{"binance", "kraken"} {
		if _, err := candles.InsertOne(ctx, bson.D{bson.E{Key: "exchangeName", Value: ex}, bson.E{Key: "symbol", Value: "BTCUSDT"}, bson.E{Key: "interval", Value: "1m"}, bson.E{Key: "timestamp", Value: int64(1)}}); err != nil {
			t.Fatalf("insert candle of %s: %v", ex, err)
		}
	}

	again, err := MigrateIndexes(ctx, db, Kinds)
	if err != nil {
		t.Fatal(err)
	}
	if again.Created != 0 || again.Replaced != 0 || again.Failed != 0 || again.Unchanged != total || again.Unknown != 1 {
		t.Fatalf("re-run summary %+v, want %d unchanged and nothing else", again, total)
	}
}

// TestMigrateReportsFailure: a unique index that existing data violates fails,
// the summary names the collection and index, and the other collections still migrate.
func TestMigrateReportsFailure(t *testing.T) {
	m, _ := servers(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	client, err := mongo.Connect(options.Client().ApplyURI(m.URI()).SetMaxPoolSize(8))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = client.Disconnect(context.Background()) }()
	db := client.Database(randomName("migfail_"))
	defer func() { _ = db.Drop(context.Background()) }()

	state, _ := Lookup(KindState)
	dup := bson.D{bson.E{Key: "signalId", Value: "s"}, bson.E{Key: "bucketName", Value: "b"}}
	if _, err := db.Collection(state.Collection).InsertMany(ctx, []any{dup, dup}); err != nil {
		t.Fatal(err)
	}
	kinds := []KindSpec{*state}
	if sig, ok := Lookup(KindSignal); ok {
		kinds = append(kinds, *sig)
	}
	sum, err := MigrateIndexes(ctx, db, kinds)
	if err == nil {
		t.Fatalf("migration over duplicate data succeeded: %+v", sum)
	}
	if sum.Failed != 1 || sum.FailedCollection != state.Collection || sum.FailedIndex != state.UniqueIndexName() {
		t.Fatalf("summary %+v does not name %s/%s", sum, state.Collection, state.UniqueIndexName())
	}
	if sum.Created != 1 { // the signal collection still got its index
		t.Fatalf("summary %+v: other collections were not migrated", sum)
	}
}
