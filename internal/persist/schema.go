package persist

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Index error codes that mean an equivalent index exists already (under another
// name or with other options). Repairing such layouts is the index migration's job;
// the store only makes sure a fresh database has what its upserts rely on.
var indexExistsCodes = []int{68, 85, 86} // IndexAlreadyExists, IndexOptionsConflict, IndexKeySpecsConflict

// ensureIndexes creates the unique index and the list indexes of every served kind
// when they are missing (createIndexes is a no-op for identical existing ones).
// Collections done are remembered, so an attempt cut short by its deadline is
// continued, not restarted, by the next one. Only Init calls it (one at a time).
func (s *Store) ensureIndexes(ctx context.Context) error {
	for i := range Kinds {
		spec := &Kinds[i]
		if !s.served[spec.Kind] || s.indexed[spec.Kind] {
			continue
		}
		keys := bson.D{}
		for _, f := range spec.UniqueKey() {
			keys = append(keys, bson.E{Key: f, Value: 1})
		}
		models := []mongo.IndexModel{{Keys: keys,
			Options: options.Index().SetName(spec.UniqueIndexName()).SetUnique(true)}}
		for _, ix := range spec.Indexes {
			k := bson.D{}
			for _, f := range ix.Keys {
				k = append(k, bson.E{Key: f.Field, Value: f.Order})
			}
			models = append(models, mongo.IndexModel{Keys: k, Options: options.Index().SetName(ix.Name)})
		}
		iv := s.opts.Database.Collection(spec.Collection).Indexes()
		if _, err := iv.CreateMany(ctx, models); err == nil {
			s.indexed[spec.Kind] = true
			continue
		}
		// One of them exists in another form: create the others one by one.
		for _, m := range models {
			_, err := iv.CreateOne(ctx, m)
			if err == nil || indexExists(err) {
				continue
			}
			if isUnavailable(err) {
				return fmt.Errorf("%w: store init: create indexes of %s: %v", ErrUnavailable, spec.Collection, err)
			}
			return fmt.Errorf("store init: create indexes of %s: %w", spec.Collection, err)
		}
		s.indexed[spec.Kind] = true
	}
	return nil
}

func indexExists(err error) bool {
	var se mongo.ServerError
	if !errors.As(err, &se) {
		return false
	}
	for _, c := range indexExistsCodes {
		if se.HasErrorCode(c) {
			return true
		}
	}
	return false
}
