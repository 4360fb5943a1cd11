package persist

import (
	"context"
	"encoding/base64"
	"strconv"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// MaxScanPage bounds the keys one scan returns.
const MaxScanPage = 1000

// maxScanCursor bounds the cursor a client sends back (an encoded _id).
const maxScanCursor = 256

// scan pages through every document of a kind's collection in _id order and
// returns their keys, named as requests name them, so that each can be read back
// (the check of an adopted database): {"collection": name, "keys":[{"key":{...}}, ...],
// "unreadable":[{"id","key","error"}], "next": cursor}. A document whose key fields
// no request could carry (missing, mistyped, empty, over the key limit) is listed
// under "unreadable" with its _id. "next" is absent on the last page. Tombstones of
// soft-deleting kinds carry "removed": true.
func (s *Store) scan(ctx context.Context, c *call) (Result, error) {
	after, _ := decodeScanCursor(c.req.After) // validated already
	fields := append([]KeyField{}, c.spec.Key...)
	if c.spec.ItemField != nil {
		fields = append(fields, *c.spec.ItemField)
	}
	proj := bson.D{{Key: "_id", Value: 1}}
	for _, f := range fields {
		proj = append(proj, bson.E{Key: f.Doc, Value: 1})
	}
	if c.spec.Shape == ShapeCandles {
		proj = append(proj, bson.E{Key: candleTimestampField, Value: 1})
	}
	if c.spec.SoftDelete {
		proj = append(proj, bson.E{Key: fieldRemoved, Value: 1})
	}
	filter := bson.D{}
	if after != nil {
		filter = bson.D{{Key: "_id", Value: bson.D{{Key: "$gt", Value: *after}}}}
	}
	opts := options.Find().SetProjection(proj).SetSort(bson.D{{Key: "_id", Value: 1}}).SetLimit(c.req.Limit)
	cur, err := s.opts.Database.Collection(c.spec.Collection).Find(ctx, filter, opts)
	if err != nil {
		return Result{}, wrapMongo(c, "scan", err)
	}
	defer cur.Close(ctx)
	keys := appendJSONString([]byte(`{"collection":`), c.spec.Collection)
	keys = append(keys, `,"keys":[`...)
	bad := []byte(`,"unreadable":[`)
	nKeys, nBad, n := 0, 0, int64(0)
	var last bsoncore.Value
	for cur.Next(ctx) {
		doc := bsoncore.Document(cur.Current)
		n++
		last = copyValue(doc.Lookup("_id"))
		key, problem := s.scanKey(c.spec, fields, doc)
		if problem != "" {
			if nBad > 0 {
				bad = append(bad, ',')
			}
			nBad++
			bad = append(bad, `{"id":`...)
			bad = appendJSONString(bad, idText(last))
			bad = append(bad, `,"key":`...)
			bad = appendRawKey(bad, fields, c.spec.Shape == ShapeCandles, doc)
			bad = append(bad, `,"error":`...)
			bad = appendJSONString(bad, problem)
			bad = append(bad, '}')
			continue
		}
		if nKeys > 0 {
			keys = append(keys, ',')
		}
		nKeys++
		keys = append(keys, `{"key":`...)
		keys = append(keys, key...)
		if c.spec.SoftDelete {
			if b, ok := doc.Lookup(fieldRemoved).BooleanOK(); ok && b {
				keys = append(keys, `,"removed":true`...)
			}
		}
		keys = append(keys, '}')
	}
	if err := cur.Err(); err != nil {
		return Result{}, wrapMongo(c, "scan", err)
	}
	out := append(append(keys, ']'), append(bad, ']')...)
	if n == c.req.Limit {
		out = append(out, `,"next":`...)
		out = appendJSONString(out, encodeScanCursor(last))
	}
	return Result{Value: append(out, '}')}, nil
}

// scanKey renders a document's key as a request key, or says why no request can name it.
func (s *Store) scanKey(spec *KindSpec, fields []KeyField, doc bsoncore.Document) ([]byte, string) {
	out := []byte{'{'}
	for i, f := range fields {
		if i > 0 {
			out = append(out, ',')
		}
		out = appendJSONString(out, f.Name)
		out = append(out, ':')
		v, err := doc.LookupErr(f.Doc)
		if err != nil {
			return nil, "field " + strconv.Quote(f.Doc) + " is missing"
		}
		switch f.Type {
		case FieldBool:
			b, ok := v.BooleanOK()
			if !ok {
				return nil, "field " + strconv.Quote(f.Doc) + " is a " + v.Type.String() + ", not a boolean"
			}
			out = strconv.AppendBool(out, b)
		default:
			str, ok := v.StringValueOK()
			if !ok {
				return nil, "field " + strconv.Quote(f.Doc) + " is a " + v.Type.String() + ", not a string"
			}
			if err := s.checkKeyString(f.Doc, str, f.AllowEmpty); err != nil {
				return nil, err.Error()
			}
			if spec.Shape == ShapeCandles && f.Name == fInterval.Name {
				if _, ok := candleIntervals[str]; !ok {
					return nil, "unknown candle interval " + strconv.Quote(str)
				}
			}
			out = appendJSONString(out, str)
		}
	}
	if spec.Shape == ShapeCandles {
		v, err := doc.LookupErr(candleTimestampField)
		if err != nil {
			return nil, "field \"timestamp\" is missing"
		}
		ts, ok := v.AsInt64OK()
		if !ok || ts < 0 {
			return nil, "field \"timestamp\" is not a non-negative integer"
		}
		out = append(out, `,"timestamp":`...)
		out = strconv.AppendInt(out, ts, 10)
	}
	return append(out, '}'), ""
}

// appendRawKey renders the key fields an unreadable document has, whatever their types.
func appendRawKey(dst []byte, fields []KeyField, candle bool, doc bsoncore.Document) []byte {
	dst = append(dst, '{')
	n := 0
	add := func(name string) {
		v, err := doc.LookupErr(name)
		if err != nil {
			return
		}
		if n > 0 {
			dst = append(dst, ',')
		}
		n++
		dst = appendJSONString(dst, name)
		dst = append(dst, ':')
		dst = appendJSON(dst, v, false)
	}
	for _, f := range fields {
		add(f.Doc)
	}
	if candle {
		add(candleTimestampField)
	}
	return append(dst, '}')
}

// idText is an _id as a person reads it: an ObjectId's hex, a string as is.
func idText(v bsoncore.Value) string {
	if oid, ok := v.ObjectIDOK(); ok {
		return bson.ObjectID(oid).Hex()
	}
	if s, ok := v.StringValueOK(); ok {
		return s
	}
	return v.String()
}

func copyValue(v bsoncore.Value) bsoncore.Value {
	return bsoncore.Value{Type: v.Type, Data: append([]byte(nil), v.Data...)}
}

// encodeScanCursor is an _id as an opaque cursor: its BSON type and bytes, base64url.
func encodeScanCursor(v bsoncore.Value) string {
	return base64.RawURLEncoding.EncodeToString(append([]byte{byte(v.Type)}, v.Data...))
}

// decodeScanCursor parses a cursor from encodeScanCursor; nil for the first page.
// Anything else a client sends is refused: it only ever becomes a $gt bound on _id.
func decodeScanCursor(s string) (*bson.RawValue, error) {
	if s == "" {
		return nil, nil
	}
	if len(s) > maxScanCursor {
		return nil, invalidf("scan cursor is %d bytes, the limit is %d", len(s), maxScanCursor)
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) < 2 {
		return nil, invalidf("scan cursor is not one this store issued")
	}
	t := bsoncore.Type(b[0])
	switch t {
	case bsoncore.TypeObjectID, bsoncore.TypeString, bsoncore.TypeInt32, bsoncore.TypeInt64, bsoncore.TypeDouble,
		bsoncore.TypeBinary, bsoncore.TypeDateTime, bsoncore.TypeBoolean:
	default:
		return nil, invalidf("scan cursor is not one this store issued")
	}
	v, rem, ok := bsoncore.ReadValue(b[1:], t)
	if !ok || len(rem) != 0 || v.Validate() != nil {
		return nil, invalidf("scan cursor is not one this store issued")
	}
	return &bson.RawValue{Type: bson.Type(t), Value: v.Data}, nil
}
