package gateway

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"
	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	authnclient "k8s.io/client-go/kubernetes/typed/authentication/v1"
)

// Identity is the authenticated caller, as the API server's TokenReview reports it.
type Identity struct {
	User   string
	UID    string
	Groups []string
	Extra  map[string][]string

	keyOnce sync.Once
	key     string
}

// cacheKey identifies the identity in the authorization cache; every attribute a
// SubjectAccessReview sends is part of it. It is built once per identity (the
// authenticator caches identities, so once per token and TTL).
func (id *Identity) cacheKey() string {
	id.keyOnce.Do(func() { id.key = id.buildCacheKey() })
	return id.key
}

func (id *Identity) buildCacheKey() string {
	var b strings.Builder
	b.WriteString(id.User)
	b.WriteByte(0)
	b.WriteString(id.UID)
	for _, g := range id.Groups {
		b.WriteByte(0)
		b.WriteString(g)
	}
	if len(id.Extra) > 0 {
		keys := make([]string, 0, len(id.Extra))
		for k := range id.Extra {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			b.WriteByte(1)
			b.WriteString(k)
			for _, v := range id.Extra[k] {
				b.WriteByte(0)
				b.WriteString(v)
			}
		}
	}
	return b.String()
}

// Authenticator turns a bearer token into an identity.
type Authenticator interface {
	// Authenticate returns the caller's identity, ErrUnauthenticated for a token
	// the API server rejects, or another error when it could not be checked.
	Authenticate(ctx context.Context, token string) (*Identity, error)
}

// ErrUnauthenticated: the token is missing, malformed, expired, or not for this API's audience.
var ErrUnauthenticated = errors.New("token not accepted")

// ErrReviewThrottled: the token is not in the cache and the TokenReviews the gateway
// may run now are used up (rate or concurrency); the caller should retry (503).
var ErrReviewThrottled = errors.New("too many new tokens to review right now")

// TokenReviewAuthenticator checks tokens with the Kubernetes TokenReview API and
// caches the decisions briefly: accepted tokens for TTL, rejected ones for
// NegativeTTL, in two caches, so that a flood of bad tokens can only evict other
// rejections and never a worker's accepted token. A bearer value that is not a
// well-formed JWT is refused without a review. Reviews are bounded by a token
// bucket and a number in flight, so that a flood of new tokens cannot crowd out
// the manager's own API calls (lease renewals, status patches) at the API
// server; a token that finds no review left gets ErrReviewThrottled, while
// cached tokens are answered as usual.
type TokenReviewAuthenticator struct {
	client      authnclient.TokenReviewInterface
	audiences   []string
	ttl         time.Duration
	negativeTTL time.Duration
	timeout     time.Duration
	accepted    *decisionCache[*Identity]
	rejected    *decisionCache[struct{}]
	flight      singleflight.Group
	limiter     *rate.Limiter
	renewals    *rate.Limiter
	inFlight    reviewSlots
	metrics     *Metrics
}

// TokenReviewOptions configure a TokenReviewAuthenticator.
type TokenReviewOptions struct {
	// Audiences the token must be bound to (any one). Empty: the API server's own audiences.
	Audiences []string
	ReviewOptions
	// RejectedCacheSize bounds the cached rejections (default 4096), apart from the
	// CacheSize accepted tokens.
	RejectedCacheSize int
	// ReviewsPerSecond and ReviewBurst are the token bucket of TokenReviews (defaults
	// DefaultTokenReviewsPerSecond, bursts of twice as many); MaxReviewsInFlight
	// bounds concurrent ones (default 8).
	ReviewsPerSecond   float64
	ReviewBurst        int
	MaxReviewsInFlight int
	// Metrics count the reviews by result (nil: not counted).
	Metrics *Metrics
}

// DefaultTokenReviewsPerSecond is the default rate of TokenReviews: far above what
// workers starting with new tokens need, far below what would crowd the manager's
// own calls out of the API server's priority level.
const DefaultTokenReviewsPerSecond = 20

// NewTokenReviewAuthenticator returns an authenticator backed by the TokenReview API.
func NewTokenReviewAuthenticator(client authnclient.TokenReviewInterface, o TokenReviewOptions) *TokenReviewAuthenticator {
	o.ReviewOptions = o.withDefaults()
	if o.ReviewsPerSecond <= 0 {
		o.ReviewsPerSecond = DefaultTokenReviewsPerSecond
	}
	if o.ReviewBurst <= 0 {
		o.ReviewBurst = int(2 * o.ReviewsPerSecond)
	}
	if o.MaxReviewsInFlight <= 0 {
		o.MaxReviewsInFlight = defaultReviewsInFlight
	}
	return &TokenReviewAuthenticator{
		client: client, audiences: o.Audiences, ttl: o.TTL, negativeTTL: o.NegativeTTL,
		timeout:  o.Timeout,
		accepted: newDecisionCache[*Identity](o.CacheSize),
		rejected: newDecisionCache[struct{}](o.RejectedCacheSize),
		limiter:  rate.NewLimiter(rate.Limit(o.ReviewsPerSecond), o.ReviewBurst),
		renewals: rate.NewLimiter(rate.Limit(o.ReviewsPerSecond), o.ReviewBurst),
		inFlight: make(reviewSlots, o.MaxReviewsInFlight),
		metrics:  o.Metrics,
	}
}

// Results of TokenReviewAuthenticator, the result label of the reviews counter.
const (
	reviewAccepted  = "accepted"
	reviewRejected  = "rejected"
	reviewError     = "error"
	reviewThrottled = "throttled"
	reviewMalformed = "malformed" // not a JWT: refused without a review
)

func (a *TokenReviewAuthenticator) count(result string) {
	if a.metrics != nil {
		a.metrics.tokenReviews.WithLabelValues(result).Inc()
	}
}

// cachedAuthenticator is an Authenticator that can answer a token from the
// decisions it holds, reading the token in place (the gateway's hot path: no copy
// of the token per request). known is false when it holds no decision for it.
type cachedAuthenticator interface {
	cached(token []byte) (id *Identity, known bool)
}

// cached implements cachedAuthenticator: an accepted token's caller, or (nil, true)
// for a token rejected before.
func (a *TokenReviewAuthenticator) cached(token []byte) (*Identity, bool) {
	return a.decided(sha256.Sum256(token))
}

// decided looks a token's digest up in the decision caches. They are keyed by a
// digest so that tokens are not kept in memory as map keys.
func (a *TokenReviewAuthenticator) decided(sum [sha256.Size]byte) (*Identity, bool) {
	if id, ok := a.accepted.lookup(string(sum[:])); ok {
		return id, true
	}
	if _, ok := a.rejected.lookup(string(sum[:])); ok {
		return nil, true
	}
	return nil, false
}

// Authenticate implements Authenticator.
func (a *TokenReviewAuthenticator) Authenticate(ctx context.Context, token string) (*Identity, error) {
	sum := sha256.Sum256([]byte(token))
	if id, known := a.decided(sum); known {
		if id == nil {
			return nil, ErrUnauthenticated
		}
		return id, nil
	}
	key := string(sum[:])
	if !wellFormedJWT(token) {
		a.count(reviewMalformed)
		return nil, ErrUnauthenticated
	}
	// Concurrent requests with one new token share one review.
	v, err, _ := a.flight.Do(key, func() (any, error) { return a.reviewBounded(ctx, key, token) })
	if err != nil {
		return nil, err
	}
	if id, _ := v.(*Identity); id != nil {
		return id, nil
	}
	return nil, ErrUnauthenticated
}

// reviewBounded runs one TokenReview within the rate and concurrency bounds and
// caches its decision. A rejected token is (nil, nil).
func (a *TokenReviewAuthenticator) reviewBounded(ctx context.Context, key, token string) (*Identity, error) {
	// A token accepted before (its entry expired but not yet evicted) renews from
	// its own budget, which unknown tokens cannot use up: a flood of random tokens
	// does not lock out workers whose cached decision just expired.
	limiter := a.limiter
	if a.accepted.holds(key) {
		limiter = a.renewals
	}
	if !limiter.Allow() {
		a.count(reviewThrottled)
		return nil, ErrReviewThrottled
	}
	leave, ok := a.inFlight.enter(ctx, a.timeout)
	if !ok {
		a.count(reviewThrottled)
		return nil, ErrReviewThrottled
	}
	defer leave()
	id, ttl, err := a.review(ctx, token)
	switch {
	case err != nil:
		a.count(reviewError)
		return nil, err
	case id == nil:
		a.count(reviewRejected)
		a.rejected.put(key, struct{}{}, a.rejected.now().Add(ttl))
		return nil, nil
	default:
		a.count(reviewAccepted)
		a.accepted.put(key, id, a.accepted.now().Add(ttl))
		return id, nil
	}
}

// review runs one TokenReview. A rejected token is (nil, negativeTTL, nil).
func (a *TokenReviewAuthenticator) review(ctx context.Context, token string) (*Identity, time.Duration, error) {
	// The review outlives a cancelled caller: other callers may share it (singleflight).
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.timeout)
	defer cancel()
	tr := &authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: token, Audiences: a.audiences}}
	res, err := a.client.Create(ctx, tr, metav1.CreateOptions{})
	if err != nil {
		return nil, 0, fmt.Errorf("token review: %w", err)
	}
	st := res.Status
	if !st.Authenticated || st.Error != "" {
		return nil, a.negativeTTL, nil
	}
	if len(a.audiences) > 0 && !audienceMatch(a.audiences, st.Audiences) {
		return nil, a.negativeTTL, nil
	}
	id := &Identity{User: st.User.Username, UID: st.User.UID, Groups: st.User.Groups}
	if len(st.User.Extra) > 0 {
		id.Extra = make(map[string][]string, len(st.User.Extra))
		for k, v := range st.User.Extra {
			id.Extra[k] = v
		}
	}
	return id, a.ttl, nil
}

// audienceMatch reports whether the API server confirmed one of the wanted audiences.
func audienceMatch(want, got []string) bool {
	for _, w := range want {
		for _, g := range got {
			if w == g {
				return true
			}
		}
	}
	return false
}
