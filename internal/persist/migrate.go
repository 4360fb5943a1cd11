package persist

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// DesiredIndex is an index this project owns on a collection.
type DesiredIndex struct {
	Name   string
	Keys   []IndexKey
	Unique bool
}

// model is the driver's form of the index.
func (d DesiredIndex) model() mongo.IndexModel {
	keys := make(bson.D, 0, len(d.Keys))
	for _, k := range d.Keys {
		keys = append(keys, bson.E{Key: k.Field, Value: k.Order})
	}
	opts := options.Index().SetName(d.Name)
	if d.Unique {
		opts.SetUnique(true)
	}
	return mongo.IndexModel{Keys: keys, Options: opts}
}

// ListedIndex is an index as listIndexes reports it.
type ListedIndex struct {
	Name   string
	Keys   []IndexKey
	Unique bool
	// Special: a key is not an ascending/descending order (text, hashed, 2dsphere...).
	Special bool
	// Options names other options that are set (sparse, partialFilterExpression,
	// expireAfterSeconds, collation, hidden...); an owned index must have none of them.
	Options []string
}

// LegacyIndex is an index layout older versions of the @backtest-kit/mongo package
// created and that is wrong now: it is dropped once its replacement exists.
type LegacyIndex struct {
	Keys   []IndexKey
	Unique bool
	Why    string
}

// legacyIndexes are the known older layouts, per kind.
var legacyIndexes = map[Kind][]LegacyIndex{
	// The older candle schema was unique on (symbol, interval, timestamp): two exchanges'
	// candles of the same symbol and time collided. The key now starts with exchangeName.
	KindCandle: {{Keys: []IndexKey{{"symbol", 1}, {"interval", 1}, {"timestamp", 1}}, Unique: true,
		Why: "candle unique index without exchangeName"}},
}

// DesiredIndexes are the indexes a kind's collection must have: its unique key and
// the secondary indexes its list queries need.
func DesiredIndexes(spec *KindSpec) []DesiredIndex {
	uk := spec.UniqueKey()
	unique := DesiredIndex{Name: spec.UniqueIndexName(), Unique: true, Keys: make([]IndexKey, 0, len(uk))}
	for _, f := range uk {
		unique.Keys = append(unique.Keys, IndexKey{Field: f, Order: 1})
	}
	out := []DesiredIndex{unique}
	for _, ix := range spec.Indexes {
		out = append(out, DesiredIndex{Name: ix.Name, Keys: slices.Clone(ix.Keys)})
	}
	return out
}

// ActionKind is what the migration does about one index.
type ActionKind int

const (
	// ActionKeep: an equivalent index exists (possibly under another name).
	ActionKeep ActionKind = iota
	// ActionCreate: the index is missing.
	ActionCreate
	// ActionReplace: an index with the desired name or keys has conflicting options;
	// it is dropped, then the desired one is created.
	ActionReplace
	// ActionDropLegacy: a known older layout; dropped after the desired indexes exist.
	ActionDropLegacy
	// ActionLeaveUnknown: an index this project does not know; left alone.
	ActionLeaveUnknown
)

func (k ActionKind) String() string {
	return [...]string{"keep", "create", "replace", "drop-legacy", "leave-unknown"}[k]
}

// IndexAction is one step of an index plan.
type IndexAction struct {
	Kind ActionKind
	// Index is the desired index (Keep, Create, Replace).
	Index DesiredIndex
	// Existing is the name of the listed index kept, replaced, dropped or left alone.
	Existing string
	// Why explains a Replace or DropLegacy.
	Why string
}

// IndexPlan is the ordered list of actions for one collection: replacements, then
// creations, then legacy drops (so a legacy unique index is only dropped once its
// stricter-or-equal replacement exists), with keeps and unknowns for the record.
type IndexPlan struct {
	Collection string
	Actions    []IndexAction
}

// PlanIndexes diffs the desired indexes of a collection against the listed ones.
// It is pure: no I/O.
func PlanIndexes(collection string, desired []DesiredIndex, legacy []LegacyIndex, listed []ListedIndex) IndexPlan {
	used := make(map[string]bool, len(listed))
	var replace, create, keep, drop, unknown []IndexAction
	for _, d := range desired {
		match := findListed(listed, used, func(l ListedIndex) bool { return l.Name == d.Name })
		if match == nil || !equivalent(d, *match) {
			// An equivalent index under another name serves as well; creating ours would fail.
			if eq := findListed(listed, used, func(l ListedIndex) bool { return equivalent(d, l) }); eq != nil {
				match = eq
			}
		}
		if match == nil {
			match = findListed(listed, used, func(l ListedIndex) bool { return keysEqual(d.Keys, l.Keys) })
		}
		switch {
		case match == nil:
			create = append(create, IndexAction{Kind: ActionCreate, Index: d})
		case equivalent(d, *match):
			used[match.Name] = true
			keep = append(keep, IndexAction{Kind: ActionKeep, Index: d, Existing: match.Name})
		default:
			used[match.Name] = true
			replace = append(replace, IndexAction{Kind: ActionReplace, Index: d, Existing: match.Name, Why: conflict(d, *match)})
		}
	}
	for _, l := range listed {
		if used[l.Name] || isIDIndex(l) {
			continue
		}
		if lg := findLegacy(legacy, l); lg != nil {
			drop = append(drop, IndexAction{Kind: ActionDropLegacy, Existing: l.Name, Why: lg.Why})
			continue
		}
		unknown = append(unknown, IndexAction{Kind: ActionLeaveUnknown, Existing: l.Name})
	}
	plan := IndexPlan{Collection: collection}
	for _, group := range [][]IndexAction{replace, create, drop, keep, unknown} {
		plan.Actions = append(plan.Actions, group...)
	}
	return plan
}

// Changes reports whether the plan does anything.
func (p IndexPlan) Changes() bool {
	for _, a := range p.Actions {
		if a.Kind == ActionCreate || a.Kind == ActionReplace || a.Kind == ActionDropLegacy {
			return true
		}
	}
	return false
}

func findListed(listed []ListedIndex, used map[string]bool, pred func(ListedIndex) bool) *ListedIndex {
	for i := range listed {
		if !used[listed[i].Name] && !isIDIndex(listed[i]) && pred(listed[i]) {
			return &listed[i]
		}
	}
	return nil
}

func findLegacy(legacy []LegacyIndex, l ListedIndex) *LegacyIndex {
	for i := range legacy {
		if legacy[i].Unique == l.Unique && keysEqual(legacy[i].Keys, l.Keys) && !l.Special {
			return &legacy[i]
		}
	}
	return nil
}

func isIDIndex(l ListedIndex) bool {
	return l.Name == "_id_" || (len(l.Keys) == 1 && l.Keys[0].Field == "_id")
}

func keysEqual(a, b []IndexKey) bool {
	return slices.Equal(a, b)
}

func equivalent(d DesiredIndex, l ListedIndex) bool {
	return !l.Special && len(l.Options) == 0 && d.Unique == l.Unique && keysEqual(d.Keys, l.Keys)
}

func conflict(d DesiredIndex, l ListedIndex) string {
	switch {
	case l.Special || !keysEqual(d.Keys, l.Keys):
		return fmt.Sprintf("index %s has other keys", l.Name)
	case d.Unique != l.Unique:
		return fmt.Sprintf("index %s has unique=%t, want %t", l.Name, l.Unique, d.Unique)
	default:
		return fmt.Sprintf("index %s has options %v", l.Name, l.Options)
	}
}

// MigrationSummary is the outcome of MigrateIndexes.
type MigrationSummary struct {
	Created, Replaced, Unchanged, Unknown, Failed int
	// FailedCollection, FailedIndex and Err describe the first failure.
	FailedCollection, FailedIndex string
	Err                           error
}

func (s *MigrationSummary) fail(coll, index string, err error) {
	s.Failed++
	if s.Err == nil {
		s.FailedCollection, s.FailedIndex = coll, index
		s.Err = fmt.Errorf("index %s on %s: %w", index, coll, err)
	}
}

// migrationOpTimeout bounds each index command; building an index on a large
// collection can take a while.
const migrationOpTimeout = 2 * time.Minute

// MigrateIndexes brings the collections of the given kinds to the desired indexes:
// creates missing ones, replaces conflicting ones this project owns, drops known
// legacy layouts and leaves unknown indexes alone. It keeps going after a failure
// and returns the first one as the error (also in the summary). Running it again
// on a migrated database changes nothing.
func MigrateIndexes(ctx context.Context, db *mongo.Database, kinds []KindSpec) (MigrationSummary, error) {
	var sum MigrationSummary
	for i := range kinds {
		spec := &kinds[i]
		coll := db.Collection(spec.Collection)
		listed, err := ListIndexes(ctx, coll)
		if err != nil {
			sum.fail(spec.Collection, "", err)
			if ctx.Err() != nil {
				break
			}
			continue
		}
		plan := PlanIndexes(spec.Collection, DesiredIndexes(spec), legacyIndexes[spec.Kind], listed)
		applyPlan(ctx, coll, plan, &sum)
	}
	return sum, sum.Err
}

func applyPlan(ctx context.Context, coll *mongo.Collection, plan IndexPlan, sum *MigrationSummary) {
	failed := false
	fail := func(index string, err error) {
		failed = true
		sum.fail(plan.Collection, index, err)
	}
	for _, a := range plan.Actions {
		switch a.Kind {
		case ActionKeep:
			sum.Unchanged++
		case ActionLeaveUnknown:
			sum.Unknown++
		case ActionCreate:
			if err := createIndex(ctx, coll, a.Index); err != nil {
				fail(a.Index.Name, err)
				continue
			}
			sum.Created++
		case ActionReplace:
			if err := dropIndex(ctx, coll, a.Existing); err != nil {
				fail(a.Existing, err)
				continue
			}
			if err := createIndex(ctx, coll, a.Index); err != nil {
				fail(a.Index.Name, err)
				continue
			}
			sum.Replaced++
		case ActionDropLegacy:
			if failed {
				// The replacement may be missing; a legacy index still beats none.
				continue
			}
			if err := dropIndex(ctx, coll, a.Existing); err != nil {
				fail(a.Existing, err)
				continue
			}
			sum.Replaced++
		}
	}
}

func createIndex(ctx context.Context, coll *mongo.Collection, d DesiredIndex) error {
	ctx, cancel := context.WithTimeout(ctx, migrationOpTimeout)
	defer cancel()
	if _, err := coll.Indexes().CreateOne(ctx, d.model()); err != nil {
		return fmt.Errorf("create: %w", err)
	}
	return nil
}

func dropIndex(ctx context.Context, coll *mongo.Collection, name string) error {
	ctx, cancel := context.WithTimeout(ctx, migrationOpTimeout)
	defer cancel()
	if err := coll.Indexes().DropOne(ctx, name); err != nil {
		return fmt.Errorf("drop: %w", err)
	}
	return nil
}

// namespaceNotFound is the error code of listIndexes on a collection that does not exist.
const namespaceNotFound = 26

// ListIndexes lists a collection's indexes; a missing collection has none.
func ListIndexes(ctx context.Context, coll *mongo.Collection) ([]ListedIndex, error) {
	ctx, cancel := context.WithTimeout(ctx, migrationOpTimeout)
	defer cancel()
	cur, err := coll.Indexes().List(ctx)
	if err != nil {
		var se mongo.ServerError
		if errors.As(err, &se) && se.HasErrorCode(namespaceNotFound) {
			return nil, nil
		}
		return nil, fmt.Errorf("list indexes of %s: %w", coll.Name(), err)
	}
	var raws []bson.Raw
	if err := cur.All(ctx, &raws); err != nil {
		return nil, fmt.Errorf("list indexes of %s: %w", coll.Name(), err)
	}
	out := make([]ListedIndex, 0, len(raws))
	for _, r := range raws {
		li, err := parseListedIndex(r)
		if err != nil {
			return nil, fmt.Errorf("list indexes of %s: %w", coll.Name(), err)
		}
		out = append(out, li)
	}
	return out, nil
}

// ignoredIndexFields carry no meaning for equivalence.
var ignoredIndexFields = map[string]bool{"v": true, "key": true, "name": true, "ns": true, "unique": true, "background": true}

func parseListedIndex(r bson.Raw) (ListedIndex, error) {
	var li ListedIndex
	elems, err := r.Elements()
	if err != nil {
		return li, fmt.Errorf("decode index: %w", err)
	}
	for _, e := range elems {
		v := e.Value()
		switch k := e.Key(); {
		case k == "name":
			li.Name, _ = v.StringValueOK()
		case k == "unique":
			li.Unique = truthy(v)
		case k == "key":
			doc, ok := v.DocumentOK()
			if !ok {
				return li, fmt.Errorf("index key is %s, not a document", v.Type)
			}
			kel, err := doc.Elements()
			if err != nil {
				return li, fmt.Errorf("decode index key: %w", err)
			}
			for _, ke := range kel {
				order, ok := numericOrder(ke.Value())
				if !ok {
					li.Special = true
				}
				li.Keys = append(li.Keys, IndexKey{Field: ke.Key(), Order: order})
			}
		case ignoredIndexFields[k]:
		default:
			// A false flag (sparse: false, hidden: false) is the same as an absent one.
			if b, ok := v.BooleanOK(); ok && !b {
				continue
			}
			li.Options = append(li.Options, k)
		}
	}
	return li, nil
}

func numericOrder(v bson.RawValue) (int, bool) {
	var f float64
	switch v.Type {
	case bson.TypeInt32:
		f = float64(v.Int32())
	case bson.TypeInt64:
		f = float64(v.Int64())
	case bson.TypeDouble:
		f = v.Double()
	default:
		return 0, false
	}
	switch {
	case f > 0:
		return 1, true
	case f < 0:
		return -1, true
	}
	return 0, false
}

func truthy(v bson.RawValue) bool {
	if b, ok := v.BooleanOK(); ok {
		return b
	}
	o, ok := numericOrder(v)
	return ok && o != 0
}
