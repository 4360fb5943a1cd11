package tenant

import (
	"context"
	"fmt"
	"time"

	"github.com/backtestpersistence/operator/internal/infra"
	"github.com/backtestpersistence/operator/internal/persist"
)

// Opener opens the store of a config.
type Opener interface {
	Open(ctx context.Context, cfg Config) (OpenStore, error)
}

// PoolOpener opens stores on clients shared through infra.Pools (with the
// reconciler and other tenants on the same servers).
type PoolOpener struct {
	Pools *infra.Pools
	// OpTimeout bounds one store operation (0: the store's default).
	OpTimeout time.Duration
	// Observer receives every store operation (metrics).
	Observer persist.Observer
}

// poolStore is a store plus the pool references it holds.
type poolStore struct {
	*persist.Store
	releases []func()
}

// Close stops the store, then releases its clients.
func (p *poolStore) Close() {
	p.Store.Close()
	for _, r := range p.releases {
		r()
	}
}

// Open implements Opener: it takes the clients from the pools, checks that the
// ownership records in the data name the tenant (an *UnavailableError with
// ReasonDataNotOwned when not), opens the store and initializes it (a ping of MongoDB; indexes are the reconciler's, so they are not
// created here).
func (o *PoolOpener) Open(ctx context.Context, cfg Config) (OpenStore, error) {
	ps := &poolStore{}
	fail := func(err error) (OpenStore, error) {
		if ps.Store != nil {
			ps.Store.Close()
		}
		for _, r := range ps.releases {
			r()
		}
		return nil, err
	}
	var mongoOpts []infra.ClientOption
	if cfg.MongoTLS != nil {
		mongoOpts = append(mongoOpts, infra.WithTLS(cfg.MongoTLS))
	}
	mc, release, err := o.Pools.Mongo(ctx, cfg.MongoURI, mongoOpts...)
	if err != nil {
		return fail(fmt.Errorf("mongo client: %w", err))
	}
	ps.releases = append(ps.releases, release)
	opts := persist.Options{
		Database:      mc.Database(cfg.Database),
		CacheIdentity: infra.CacheIdentity(cfg.MongoURI, cfg.Database),
		KeyPrefix:     cfg.KeyPrefix,
		CacheTTL:      cfg.CacheTTL,
		OpTimeout:     o.OpTimeout,
		Kinds:         cfg.Kinds,
		ListWindows:   cfg.ListWindows,
		Observer:      o.Observer,
		SkipIndexes:   true,
	}
	if cfg.RedisURL != "" {
		var redisOpts []infra.ClientOption
		if cfg.RedisTLS != nil {
			redisOpts = append(redisOpts, infra.WithTLS(cfg.RedisTLS))
		}
		rc, release, err := o.Pools.Redis(ctx, cfg.RedisURL, redisOpts...)
		if err != nil {
			return fail(fmt.Errorf("redis client: %w", err))
		}
		ps.releases = append(ps.releases, release)
		opts.Redis = rc
	}
	if err := verifyOwnership(ctx, opts.Database, opts.Redis, cfg.KeyPrefix, cfg.OwnerUID); err != nil {
		return fail(err)
	}
	if ps.Store, err = persist.Open(opts); err != nil {
		return fail(fmt.Errorf("open store: %w", err))
	}
	if err := ps.Store.Init(ctx); err != nil {
		return fail(fmt.Errorf("init store: %w", err))
	}
	return ps, nil
}
