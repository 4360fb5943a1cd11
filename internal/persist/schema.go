package persist

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/mongo"
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
		var models []mongo.IndexModel
		for _, d := range DesiredIndexes(spec) {
			models = append(models, d.model())
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
