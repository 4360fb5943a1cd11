package tenant

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/backtestpersistence/operator/api/v1"
	"github.com/backtestpersistence/operator/internal/infra"
	"github.com/backtestpersistence/operator/internal/persist"
)

// Config is everything a tenant's store is opened with. Two equal configs (same
// Fingerprint) share one open store; any change reopens it.
type Config struct {
	MongoURI  string
	MongoTLS  *infra.TLSMaterial
	Database  string
	RedisURL  string // empty when the cache is disabled
	RedisTLS  *infra.TLSMaterial
	KeyPrefix string
	// OwnerUID is the UID of the BacktestPersistence; the store is opened only when
	// the database's ownership marker (and, when Redis answers, the key-space claim) names it.
	OwnerUID string
	CacheTTL time.Duration // 0: the store's default
	Kinds    []persist.Kind
	// ListWindows are the list windows the spec raises above the consumer's caps.
	ListWindows map[persist.Kind]int
}

// Fingerprint identifies the config without keeping credentials readable.
func (c Config) Fingerprint() string {
	h := sha256.New()
	for _, s := range []string{c.MongoURI, c.Database, c.RedisURL, c.KeyPrefix, c.OwnerUID, c.CacheTTL.String()} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	for _, m := range []*infra.TLSMaterial{c.MongoTLS, c.RedisTLS} {
		if m == nil {
			h.Write([]byte{2})
			continue
		}
		h.Write(m.CAPEM)
		h.Write([]byte{0})
		h.Write([]byte(m.ServerName))
		if m.InsecureSkipVerify {
			h.Write([]byte{1})
		}
	}
	for _, k := range c.Kinds {
		h.Write([]byte(k))
		h.Write([]byte{0})
	}
	h.Write([]byte{3})
	for _, k := range []persist.Kind{persist.KindStorage, persist.KindNotification, persist.KindLog} {
		fmt.Fprintf(h, "%s=%d\x00", k, c.ListWindows[k])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// configFor builds the store config of a tenant from its object and resolved Secrets.
func configFor(obj *v1.BacktestPersistence, ep infra.Endpoints) Config {
	c := Config{
		MongoURI:  ep.MongoURI,
		MongoTLS:  ep.MongoTLS,
		Database:  infra.DatabaseName(obj),
		KeyPrefix: infra.KeyPrefix(obj),
		OwnerUID:  string(obj.UID),
	}
	if obj.Spec.Cache.Enabled == nil || *obj.Spec.Cache.Enabled {
		c.RedisURL = ep.RedisURL
		c.RedisTLS = ep.RedisTLS
		if obj.Spec.Cache.TTL != nil {
			c.CacheTTL = obj.Spec.Cache.TTL.Duration
		}
	}
	for _, a := range obj.Spec.Adapters {
		c.Kinds = append(c.Kinds, persist.Kind(a))
	}
	c.ListWindows = ListWindows(obj)
	return c
}

// ListWindows are the list windows a tenant's spec sets (nil: the consumer's caps).
func ListWindows(obj *v1.BacktestPersistence) map[persist.Kind]int {
	var out map[persist.Kind]int
	for kind, l := range listSpecs(obj) {
		if l != nil && l.Window != nil {
			if out == nil {
				out = map[persist.Kind]int{}
			}
			out[kind] = int(*l.Window)
		}
	}
	return out
}

// listSpecs are the spec's list settings by kind (entries may be nil).
func listSpecs(obj *v1.BacktestPersistence) map[persist.Kind]*v1.ListSpec {
	l := obj.Spec.Lists
	if l == nil {
		return nil
	}
	return map[persist.Kind]*v1.ListSpec{persist.KindStorage: l.Storage, persist.KindNotification: l.Notification, persist.KindLog: l.Log}
}

// RetentionPolicies are the retention policies a tenant's spec sets, by list kind.
func RetentionPolicies(obj *v1.BacktestPersistence) map[persist.Kind]persist.RetentionPolicy {
	out := map[persist.Kind]persist.RetentionPolicy{}
	for kind, l := range listSpecs(obj) {
		if l == nil || l.Retention == nil {
			continue
		}
		var p persist.RetentionPolicy
		if l.Retention.MaxItems != nil {
			p.MaxItems = int(*l.Retention.MaxItems)
		}
		if l.Retention.MaxAge != nil {
			p.MaxAge = l.Retention.MaxAge.Duration
		}
		out[kind] = p
	}
	return out
}

// gateConditions are the infrastructure conditions that must be True before a tenant
// is served. RedisReady is deliberately absent: Redis is a cache, and the store serves
// reads from MongoDB while it is down. DataOwned keeps a tenant that names another
// tenant's database or key space from ever being served.
var gateConditions = []string{v1.ConditionMongoReady, v1.ConditionDataOwned, v1.ConditionIndexesReady}

// checkServable says why a tenant must not be served, or nil when it may be.
func checkServable(obj *v1.BacktestPersistence) *UnavailableError {
	if !obj.DeletionTimestamp.IsZero() {
		return &UnavailableError{Reason: "Deleting", Message: "the BacktestPersistence is being deleted"}
	}
	for _, t := range gateConditions {
		c := meta.FindStatusCondition(obj.Status.Conditions, t)
		switch {
		case c == nil:
			return &UnavailableError{Reason: "WaitingFor" + t, Message: fmt.Sprintf("condition %s has not been reported yet", t)}
		case c.Status != metav1.ConditionTrue:
			msg := c.Message
			if msg == "" {
				msg = c.Reason
			}
			return &UnavailableError{Reason: strings.TrimSuffix(t, "Ready") + "NotReady", Message: fmt.Sprintf("%s is %s: %s", t, c.Status, msg)}
		}
	}
	return nil
}
