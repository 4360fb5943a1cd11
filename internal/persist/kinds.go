package persist

// Kind names one of backtest-kit's persist adapters: 16 in backtest-kit 19.x, 17 in 20.x
// (Dictionary).
type Kind string

// The 17 kinds, named as backtest-kit names its adapters (PersistSignalAdapter → "signal").
const (
	KindSignal       Kind = "signal"
	KindSchedule     Kind = "schedule"
	KindStrategy     Kind = "strategy"
	KindRisk         Kind = "risk"
	KindPartial      Kind = "partial"
	KindBreakeven    Kind = "breakeven"
	KindCandle       Kind = "candle"
	KindStorage      Kind = "storage"
	KindNotification Kind = "notification"
	KindLog          Kind = "log"
	KindMeasure      Kind = "measure"
	KindInterval     Kind = "interval"
	KindMemory       Kind = "memory"
	KindRecent       Kind = "recent"
	KindState        Kind = "state"
	KindSession      Kind = "session"
	// KindDictionary is backtest-kit 20.x's per-signal dictionary snapshot.
	KindDictionary Kind = "dictionary"
)

// Op is an operation on a kind.
type Op string

const (
	OpRead   Op = "read"
	OpWrite  Op = "write"
	OpHas    Op = "has"
	OpRemove Op = "remove"
	OpList   Op = "list"
	// OpScan pages through the keys of every document of a kind (see scan.go).
	OpScan Op = "scan"
)

// Shape says how a kind's documents relate to its key.
type Shape int

const (
	// ShapeRecord: one document per key holding one JSON payload.
	ShapeRecord Shape = iota
	// ShapeList: the value is an array; each element is a document keyed by its id field.
	ShapeList
	// ShapeCandles: OHLCV documents keyed by open time; reads are windows.
	ShapeCandles
)

// FieldType is the JSON type of a key field.
type FieldType int

const (
	FieldString FieldType = iota
	FieldBool
)

// KeyField is one part of a kind's context key, named as the request names it
// (JSON) and as the document stores it (BSON, the @backtest-kit/mongo layout).
type KeyField struct {
	Name       string    // request field name, e.g. "strategyName"
	Doc        string    // document field name, e.g. "strategyName"
	Type       FieldType // string or bool
	AllowEmpty bool      // "" is a valid value (frameName is "" in live mode)
}

// Index is a secondary index a list query needs. Keys are in order; -1 is descending.
type Index struct {
	Name string
	Keys []IndexKey
}

// IndexKey is one field of an index.
type IndexKey struct {
	Field string
	Order int
}

// KindSpec is one row of the table of kinds: everything the shared code needs to know.
type KindSpec struct {
	Kind       Kind
	Collection string     // collection name of the @backtest-kit/mongo layout
	Key        []KeyField // context key; with ItemField, the collection's unique index
	// ItemField is the per-item id of list kinds (Storage: "signalId", the payload's "id"),
	// or the per-record key of keyed kinds (Measure/Interval "entryKey", Memory "memoryId").
	// Empty for kinds whose context key alone identifies the document.
	ItemField *KeyField
	Shape     Shape
	Ops       []Op
	// Empty is the JSON a read returns when nothing is stored: "null", "[]" or "{}".
	Empty string
	// NullWritable: a write of JSON null is stored and read back as null (Signal, Schedule, Strategy).
	NullWritable bool
	// SoftDelete: remove sets removed=true; reads and lists skip tombstones.
	SoftDelete bool
	// InsertOnly: existing items are never rewritten (Candle, Log).
	InsertOnly bool
	// HasWhen: writes carry the logical time "when" (epoch ms), stored as a top-level field.
	HasWhen bool
	// PayloadField is the document field holding the JSON payload ("payload"; Risk: "positions").
	PayloadField string
	// Indexes are the secondary indexes list queries need (W12: no redundant single-field ones).
	Indexes []Index
	// Head is the bounded window a list read returns (list kinds only).
	Head *ListHead
}

// ListHead is what a list kind's consumer keeps: the Window items of highest
// SortField (a number at the item's top level; 0 when absent). Reads return that
// window from a head collection that holds only it, so their cost does not grow
// with the list's history (listhead.go).
type ListHead struct {
	Collection string // the head collection, beside the item collection
	SortField  string // "priority" or "createdAt"
	Window     int    // the consumer's cap: the floor of a tenant's window
}

var (
	fSymbol     = KeyField{Name: "symbol", Doc: "symbol"}
	fStrategy   = KeyField{Name: "strategyName", Doc: "strategyName"}
	fExchange   = KeyField{Name: "exchangeName", Doc: "exchangeName"}
	fFrame      = KeyField{Name: "frameName", Doc: "frameName", AllowEmpty: true}
	fBacktest   = KeyField{Name: "backtest", Doc: "backtest", Type: FieldBool}
	fRisk       = KeyField{Name: "riskName", Doc: "riskName"}
	fSignalID   = KeyField{Name: "signalId", Doc: "signalId"}
	fBucketName = KeyField{Name: "bucketName", Doc: "bucketName"}
	fBucket     = KeyField{Name: "bucket", Doc: "bucket"}
	fInterval   = KeyField{Name: "interval", Doc: "interval"}
	fEntryKey   = KeyField{Name: "key", Doc: "entryKey"}
	fMemoryID   = KeyField{Name: "memoryId", Doc: "memoryId"}
	fDictName   = KeyField{Name: "dictionaryName", Doc: "dictionaryName"}
	fStorageID  = KeyField{Name: "id", Doc: "signalId"}
	fNotifyID   = KeyField{Name: "id", Doc: "notificationId"}
	fLogID      = KeyField{Name: "id", Doc: "entryId"}
)

var (
	opsReadWrite = []Op{OpRead, OpWrite, OpScan}
	opsSoft      = []Op{OpRead, OpWrite, OpRemove, OpList, OpScan}
	opsMemory    = []Op{OpRead, OpHas, OpWrite, OpRemove, OpList, OpScan}
)

// Kinds is the table of the 17 kinds: backtest-kit 19.x's 16 in its order, then
// Dictionary (20.x).
var Kinds = []KindSpec{
	{Kind: KindSignal, Collection: "signal-items", Key: []KeyField{fSymbol, fStrategy, fExchange},
		Shape: ShapeRecord, Ops: opsReadWrite, Empty: "null", NullWritable: true, PayloadField: "payload"},
	{Kind: KindSchedule, Collection: "schedule-items", Key: []KeyField{fSymbol, fStrategy, fExchange},
		Shape: ShapeRecord, Ops: opsReadWrite, Empty: "null", NullWritable: true, PayloadField: "payload"},
	{Kind: KindStrategy, Collection: "strategy-items", Key: []KeyField{fSymbol, fStrategy, fExchange},
		Shape: ShapeRecord, Ops: opsReadWrite, Empty: "null", NullWritable: true, PayloadField: "payload"},
	{Kind: KindRisk, Collection: "risk-items", Key: []KeyField{fRisk, fExchange},
		Shape: ShapeRecord, Ops: opsReadWrite, Empty: "[]", HasWhen: true, PayloadField: "positions"},
	{Kind: KindPartial, Collection: "partial-items", Key: []KeyField{fSymbol, fStrategy, fExchange, fSignalID},
		Shape: ShapeRecord, Ops: opsReadWrite, Empty: "{}", HasWhen: true, PayloadField: "payload"},
	{Kind: KindBreakeven, Collection: "breakeven-items", Key: []KeyField{fSymbol, fStrategy, fExchange, fSignalID},
		Shape: ShapeRecord, Ops: opsReadWrite, Empty: "{}", HasWhen: true, PayloadField: "payload"},
	{Kind: KindCandle, Collection: "candle-items", Key: []KeyField{fExchange, fSymbol, fInterval},
		Shape: ShapeCandles, Ops: opsReadWrite, Empty: "null", InsertOnly: true},
	{Kind: KindStorage, Collection: "storage-items", Key: []KeyField{fBacktest}, ItemField: &fStorageID,
		Shape: ShapeList, Ops: opsReadWrite, Empty: "[]", PayloadField: "payload",
		Head: &ListHead{Collection: "storage-head", SortField: "priority", Window: 50}},
	{Kind: KindNotification, Collection: "notification-items", Key: []KeyField{fBacktest}, ItemField: &fNotifyID,
		Shape: ShapeList, Ops: opsReadWrite, Empty: "[]", PayloadField: "payload",
		Indexes: []Index{{Name: "backtest_1_createDate_-1", Keys: []IndexKey{{"backtest", 1}, {"createDate", -1}}}},
		Head:    &ListHead{Collection: "notification-head", SortField: "createdAt", Window: 500}},
	{Kind: KindLog, Collection: "log-items", ItemField: &fLogID,
		Shape: ShapeList, Ops: opsReadWrite, Empty: "[]", InsertOnly: true, PayloadField: "payload",
		Indexes: []Index{{Name: "createDate_-1", Keys: []IndexKey{{"createDate", -1}}}},
		Head:    &ListHead{Collection: "log-head", SortField: "priority", Window: 1000}},
	{Kind: KindMeasure, Collection: "measure-items", Key: []KeyField{fBucket}, ItemField: &fEntryKey,
		Shape: ShapeRecord, Ops: opsSoft, Empty: "null", SoftDelete: true, HasWhen: true, PayloadField: "payload",
		Indexes: []Index{{Name: "bucket_1_removed_1", Keys: []IndexKey{{"bucket", 1}, {"removed", 1}}}}},
	{Kind: KindInterval, Collection: "interval-items", Key: []KeyField{fBucket}, ItemField: &fEntryKey,
		Shape: ShapeRecord, Ops: opsSoft, Empty: "null", SoftDelete: true, HasWhen: true, PayloadField: "payload",
		Indexes: []Index{{Name: "bucket_1_removed_1", Keys: []IndexKey{{"bucket", 1}, {"removed", 1}}}}},
	{Kind: KindMemory, Collection: "memory-items", Key: []KeyField{fSignalID, fBucketName}, ItemField: &fMemoryID,
		Shape: ShapeRecord, Ops: opsMemory, Empty: "null", SoftDelete: true, HasWhen: true, PayloadField: "payload",
		Indexes: []Index{{Name: "signalId_1_bucketName_1_removed_1", Keys: []IndexKey{{"signalId", 1}, {"bucketName", 1}, {"removed", 1}}}}},
	{Kind: KindRecent, Collection: "recent-items", Key: []KeyField{fSymbol, fStrategy, fExchange, fFrame, fBacktest},
		Shape: ShapeRecord, Ops: opsReadWrite, Empty: "null", HasWhen: true, PayloadField: "payload"},
	{Kind: KindState, Collection: "state-items", Key: []KeyField{fSignalID, fBucketName},
		Shape: ShapeRecord, Ops: opsReadWrite, Empty: "null", HasWhen: true, PayloadField: "payload"},
	{Kind: KindSession, Collection: "session-items", Key: []KeyField{fStrategy, fExchange, fFrame, fSymbol, fBacktest},
		Shape: ShapeRecord, Ops: opsReadWrite, Empty: "null", HasWhen: true, PayloadField: "payload"},
	{Kind: KindDictionary, Collection: "dictionary-items", Key: []KeyField{fSignalID, fDictName},
		Shape: ShapeRecord, Ops: opsReadWrite, Empty: "null", HasWhen: true, PayloadField: "payload"},
}

// candleTimestamp is the fourth field of the candle unique index.
const candleTimestampField = "timestamp"

var kindIndex = func() map[Kind]*KindSpec {
	m := make(map[Kind]*KindSpec, len(Kinds))
	for i := range Kinds {
		m[Kinds[i].Kind] = &Kinds[i]
	}
	return m
}()

// Lookup returns the spec of a kind, or false for an unknown kind.
func Lookup(k Kind) (*KindSpec, bool) {
	s, ok := kindIndex[k]
	return s, ok
}

// UniqueKey is the field list of the collection's unique index, in index order.
func (s *KindSpec) UniqueKey() []string {
	out := make([]string, 0, len(s.Key)+2)
	for _, f := range s.Key {
		out = append(out, f.Doc)
	}
	if s.ItemField != nil {
		out = append(out, s.ItemField.Doc)
	}
	if s.Shape == ShapeCandles {
		out = append(out, candleTimestampField)
	}
	return out
}

// UniqueIndexName is the name this project gives the unique index.
func (s *KindSpec) UniqueIndexName() string {
	name := ""
	for i, f := range s.UniqueKey() {
		if i > 0 {
			name += "_"
		}
		name += f + "_1"
	}
	return name
}

// Supports reports whether the kind has the operation.
func (s *KindSpec) Supports(op Op) bool {
	for _, o := range s.Ops {
		if o == op {
			return true
		}
	}
	return false
}
