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

// TokenReviewAuthenticator checks tokens with the Kubernetes TokenReview API and
// caches the decisions briefly (accepted tokens for TTL, rejected ones for NegativeTTL).
type TokenReviewAuthenticator struct {
	client      authnclient.TokenReviewInterface
	audiences   []string
	ttl         time.Duration
	negativeTTL time.Duration
	timeout     time.Duration
	cache       *decisionCache[*Identity]
}

// TokenReviewOptions configure a TokenReviewAuthenticator.
type TokenReviewOptions struct {
	// Audiences the token must be bound to (any one). Empty: the API server's own audiences.
	Audiences []string
	ReviewOptions
}

// NewTokenReviewAuthenticator returns an authenticator backed by the TokenReview API.
func NewTokenReviewAuthenticator(client authnclient.TokenReviewInterface, o TokenReviewOptions) *TokenReviewAuthenticator {
	o.ReviewOptions = o.withDefaults()
	return &TokenReviewAuthenticator{
		client: client, audiences: o.Audiences, ttl: o.TTL, negativeTTL: o.NegativeTTL,
		timeout: o.Timeout, cache: newDecisionCache[*Identity](o.CacheSize),
	}
}

// Authenticate implements Authenticator.
func (a *TokenReviewAuthenticator) Authenticate(ctx context.Context, token string) (*Identity, error) {
	// The cache is keyed by a digest so that tokens are not kept in memory as map keys.
	sum := sha256.Sum256([]byte(token))
	id, err := a.cache.get(string(sum[:]), func() (*Identity, time.Duration, error) {
		return a.review(ctx, token)
	})
	if err != nil {
		return nil, err
	}
	if id == nil {
		return nil, ErrUnauthenticated
	}
	return id, nil
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
