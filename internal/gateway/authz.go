package gateway

import (
	"context"
	"errors"
	"fmt"
	"time"

	authzv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	authzclient "k8s.io/client-go/kubernetes/typed/authorization/v1"

	"github.com/backtestpersistence/operator/internal/persist"
)

// The resource attributes of a data access: tenants grant workers access with
// ordinary Roles on this subresource of their BacktestPersistence.
const (
	DataGroup       = "persistence.backtestkit.dev"
	DataResource    = "backtestpersistences"
	DataSubresource = "data"
	// VerbRead is checked for read, has and list; VerbWrite for write and remove;
	// VerbScan for scan, which enumerates every key of a kind (granted apart: a
	// worker that reads and writes its own keys has no need to list the tenant's).
	VerbRead  = "get"
	VerbWrite = "update"
	VerbScan  = "list"
)

// Authorizer decides whether an identity may use a verb on a tenant's data.
type Authorizer interface {
	// Authorize returns (true, "") when allowed, (false, reason) when denied, or an
	// error when the decision could not be made.
	Authorize(ctx context.Context, id *Identity, namespace, name, verb string) (bool, string, error)
}

// SubjectAccessReviewAuthorizer decides with the SubjectAccessReview API and caches
// decisions briefly (allowed for TTL, denied for NegativeTTL). Reviews are bounded
// per caller (a token bucket each) and in number in flight: a caller with an
// accepted token can name any tenant path, and each one it has no decision for
// costs a review at the API server, through the client the gateway's TokenReviews
// share. Without the bound, one caller trying paths would hold every other
// caller's first review (and new tokens' reviews) behind its own. A caller whose
// budget is spent gets ErrAccessReviewThrottled for decisions not held; decisions
// held still answer.
type SubjectAccessReviewAuthorizer struct {
	client      authzclient.SubjectAccessReviewInterface
	ttl         time.Duration
	negativeTTL time.Duration
	timeout     time.Duration
	budgets     *callerBudgets
	inFlight    reviewSlots
	metrics     *Metrics
	// cache holds allowed decisions, denied the others: a caller collecting denials
	// (one per tenant path it tries) evicts only denials, never the workers'
	// allowed decisions, nor does it make their inserts scan a full cache.
	cache, denied *decisionCache[accessDecision]
}

type accessDecision struct {
	allowed bool
	reason  string
}

// SubjectAccessReviewOptions configure a SubjectAccessReviewAuthorizer.
type SubjectAccessReviewOptions struct {
	ReviewOptions
	// CallerReviewsPerSecond and CallerReviewBurst are each caller's token bucket of
	// reviews (defaults DefaultCallerReviewsPerSecond and DefaultCallerReviewBurst).
	// A worker needs one review per tenant and verb per TTL.
	CallerReviewsPerSecond float64
	CallerReviewBurst      int
	// MaxReviewsInFlight bounds concurrent reviews of all callers (default 8).
	MaxReviewsInFlight int
	// Metrics count the reviews by result (nil: not counted).
	Metrics *Metrics
}

// Defaults of each caller's budget of SubjectAccessReviews: a worker of one tenant
// needs three reviews (one per verb) per decision TTL, a worker of a few dozen
// tenants its burst once.
const (
	DefaultCallerReviewsPerSecond = 5
	DefaultCallerReviewBurst      = 64
)

// ErrAccessReviewThrottled: the caller has no decision held for a tenant path and
// verb, and has spent its budget of SubjectAccessReviews (or too many are in
// flight). The gateway answers 503; retrying later succeeds.
var ErrAccessReviewThrottled = errors.New("too many access reviews for this caller right now")

// NewSubjectAccessReviewAuthorizer returns an authorizer backed by the SubjectAccessReview API.
func NewSubjectAccessReviewAuthorizer(client authzclient.SubjectAccessReviewInterface, o SubjectAccessReviewOptions) *SubjectAccessReviewAuthorizer {
	o.ReviewOptions = o.withDefaults()
	if o.CallerReviewsPerSecond <= 0 {
		o.CallerReviewsPerSecond = DefaultCallerReviewsPerSecond
	}
	if o.CallerReviewBurst <= 0 {
		o.CallerReviewBurst = DefaultCallerReviewBurst
	}
	if o.MaxReviewsInFlight <= 0 {
		o.MaxReviewsInFlight = defaultReviewsInFlight
	}
	return &SubjectAccessReviewAuthorizer{
		client: client, ttl: o.TTL, negativeTTL: o.NegativeTTL, timeout: o.Timeout,
		cache: newDecisionCache[accessDecision](o.CacheSize), denied: newDecisionCache[accessDecision](o.CacheSize),
		budgets:  newCallerBudgets(o.CallerReviewsPerSecond, o.CallerReviewBurst, o.CacheSize),
		inFlight: make(reviewSlots, o.MaxReviewsInFlight),
		metrics:  o.Metrics,
	}
}

// Results of SubjectAccessReviewAuthorizer, the result label of the reviews counter.
const (
	accessAllowed   = "allowed"
	accessDenied    = "denied"
	accessError     = "error"
	accessThrottled = "throttled"
)

func (a *SubjectAccessReviewAuthorizer) count(result string) {
	if a.metrics != nil {
		a.metrics.accessReviews.WithLabelValues(result).Inc()
	}
}

// Authorize implements Authorizer.
func (a *SubjectAccessReviewAuthorizer) Authorize(ctx context.Context, id *Identity, namespace, name, verb string) (bool, string, error) {
	// A decision held is found without building the key as a string.
	var buf [256]byte
	k := append(append(append(append(append(append(append(buf[:0], verb...), 2), namespace...), 2), name...), 2), id.cacheKey()...)
	if d, ok := a.cache.lookupBytes(k); ok {
		return d.allowed, d.reason, nil
	}
	if d, ok := a.denied.lookupBytes(k); ok {
		return d.allowed, d.reason, nil
	}
	key := string(k)
	d, err := a.cache.get(key, func() (accessDecision, time.Duration, error) {
		d, ttl, err := a.reviewBounded(ctx, id, namespace, name, verb)
		if err == nil && !d.allowed && ttl > 0 {
			a.denied.put(key, d, a.denied.now().Add(ttl))
			ttl = 0 // not among the allowed ones
		}
		return d, ttl, err
	})
	if err != nil {
		return false, "", err
	}
	return d.allowed, d.reason, nil
}

// reviewBounded runs one review within the caller's budget and the bound in flight.
func (a *SubjectAccessReviewAuthorizer) reviewBounded(ctx context.Context, id *Identity, namespace, name, verb string) (accessDecision, time.Duration, error) {
	if !a.budgets.allow(id.cacheKey()) {
		a.count(accessThrottled)
		return accessDecision{}, 0, ErrAccessReviewThrottled
	}
	leave, ok := a.inFlight.enter(ctx, a.timeout)
	if !ok {
		a.count(accessThrottled)
		return accessDecision{}, 0, ErrAccessReviewThrottled
	}
	defer leave()
	d, ttl, err := a.review(ctx, id, namespace, name, verb)
	switch {
	case err != nil:
		a.count(accessError)
	case d.allowed:
		a.count(accessAllowed)
	default:
		a.count(accessDenied)
	}
	return d, ttl, err
}

func (a *SubjectAccessReviewAuthorizer) review(ctx context.Context, id *Identity, namespace, name, verb string) (accessDecision, time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.timeout)
	defer cancel()
	sar := &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
		User: id.User, UID: id.UID, Groups: id.Groups,
		ResourceAttributes: &authzv1.ResourceAttributes{
			Namespace: namespace, Name: name, Verb: verb,
			Group: DataGroup, Resource: DataResource, Subresource: DataSubresource,
		},
	}}
	if len(id.Extra) > 0 {
		sar.Spec.Extra = make(map[string]authzv1.ExtraValue, len(id.Extra))
		for k, v := range id.Extra {
			sar.Spec.Extra[k] = v
		}
	}
	res, err := a.client.Create(ctx, sar, metav1.CreateOptions{})
	if err != nil {
		return accessDecision{}, 0, fmt.Errorf("subject access review: %w", err)
	}
	if res.Status.Allowed && !res.Status.Denied {
		return accessDecision{allowed: true}, a.ttl, nil
	}
	return accessDecision{reason: res.Status.Reason}, a.negativeTTL, nil
}

// verbOf is the verb an operation needs; ok is false for an operation this table
// does not know, which must be denied (fail closed), never mapped to a default.
func verbOf(op persist.Op) (verb string, ok bool) {
	switch op {
	case persist.OpRead, persist.OpHas, persist.OpList:
		return VerbRead, true
	case persist.OpWrite, persist.OpRemove:
		return VerbWrite, true
	case persist.OpScan:
		return VerbScan, true
	default:
		return "", false
	}
}
