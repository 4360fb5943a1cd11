package controllers

import (
	"context"
	"reflect"
	"sync"

	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"k8s.io/apimachinery/pkg/types"

	"github.com/backtestpersistence/operator/internal/infra"
)

// tenantClients holds, per BacktestPersistence, a reference on the shared clients of
// its current endpoints, so pools stay warm between health checks and are closed
// once no tenant (and no gateway store) uses an endpoint any more.
type tenantClients struct {
	pools *infra.Pools

	mu sync.Mutex
	m  map[types.NamespacedName]*tenantLease
}

type tenantLease struct {
	mongo clientLease[*mongo.Client]
	redis clientLease[redis.UniversalClient]
}

// clientLease is one reference on a pooled client and what it was acquired for.
type clientLease[C any] struct {
	uri     string
	tls     *infra.TLSMaterial
	client  C
	release func()
}

func (l *clientLease[C]) matches(uri string, tls *infra.TLSMaterial) bool {
	return l.release != nil && l.uri == uri && reflect.DeepEqual(l.tls, tls)
}

func (l *clientLease[C]) drop() {
	if l.release != nil {
		l.release()
	}
	*l = clientLease[C]{}
}

func newTenantClients(pools *infra.Pools) *tenantClients {
	return &tenantClients{pools: pools, m: map[types.NamespacedName]*tenantLease{}}
}

func (t *tenantClients) lease(name types.NamespacedName) *tenantLease {
	l, ok := t.m[name]
	if !ok {
		l = &tenantLease{}
		t.m[name] = l
	}
	return l
}

// mongo returns the tenant's MongoDB client for uri, swapping the lease when the
// endpoint changed (a rotated Secret). The old client is released outside the lock:
// closing it may take a moment and must not hold up other tenants.
func (t *tenantClients) mongo(ctx context.Context, name types.NamespacedName, uri string, tls *infra.TLSMaterial) (*mongo.Client, error) {
	t.mu.Lock()
	l := t.lease(name)
	if l.mongo.matches(uri, tls) {
		c := l.mongo.client
		t.mu.Unlock()
		return c, nil
	}
	c, release, err := t.pools.Mongo(ctx, uri, infra.WithTLS(tls))
	if err != nil {
		t.mu.Unlock()
		return nil, err
	}
	old := l.mongo
	l.mongo = clientLease[*mongo.Client]{uri: uri, tls: tls, client: c, release: release}
	t.mu.Unlock()
	old.drop()
	return c, nil
}

// redis returns the tenant's Redis client for url, as mongo does.
func (t *tenantClients) redis(ctx context.Context, name types.NamespacedName, url string, tls *infra.TLSMaterial) (redis.UniversalClient, error) {
	t.mu.Lock()
	l := t.lease(name)
	if l.redis.matches(url, tls) {
		c := l.redis.client
		t.mu.Unlock()
		return c, nil
	}
	c, release, err := t.pools.Redis(ctx, url, infra.WithTLS(tls))
	if err != nil {
		t.mu.Unlock()
		return nil, err
	}
	old := l.redis
	l.redis = clientLease[redis.UniversalClient]{uri: url, tls: tls, client: c, release: release}
	t.mu.Unlock()
	old.drop()
	return c, nil
}

// release gives up the tenant's clients (deleted object).
func (t *tenantClients) release(name types.NamespacedName) {
	t.mu.Lock()
	l, ok := t.m[name]
	delete(t.m, name)
	t.mu.Unlock()
	if ok {
		l.mongo.drop()
		l.redis.drop()
	}
}

// releaseAll gives up every lease (manager shutdown).
func (t *tenantClients) releaseAll() {
	t.mu.Lock()
	all := t.m
	t.m = map[types.NamespacedName]*tenantLease{}
	t.mu.Unlock()
	for _, l := range all {
		l.mongo.drop()
		l.redis.drop()
	}
}
