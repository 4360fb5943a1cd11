package gateway

import (
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/backtestpersistence/operator/internal/persist"
)

// Metrics are the gateway's Prometheus collectors. Labels are bounded: kind and op
// come from the table of kinds ("other" for anything else), route from the fixed
// routes, code from the fixed error codes. Tenants are deliberately not a label.
// Metrics implements persist.Observer, so stores report their own latency, errors
// and cache hits into the same collectors.
type Metrics struct {
	requests        *prometheus.CounterVec
	requestDuration *prometheus.HistogramVec
	opDuration      *prometheus.HistogramVec
	opErrors        *prometheus.CounterVec
	cacheHits       *prometheus.CounterVec
	authDecisions   *prometheus.CounterVec
	panics          prometheus.Counter
	tokenReviews    *prometheus.CounterVec
	accessReviews   *prometheus.CounterVec

	// Pre-resolved children for the hot path, indexed by kind and op position.
	opObs [][]opChildren
}

type opChildren struct {
	duration prometheus.Observer
	errors   prometheus.Counter
	hits     prometheus.Counter
}

var latencyBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

var allOps = []persist.Op{persist.OpRead, persist.OpWrite, persist.OpHas, persist.OpRemove, persist.OpList, persist.OpScan}

var (
	defaultMetricsOnce sync.Once
	defaultMetrics     *Metrics
)

// DefaultMetrics returns the process-wide collectors, registered once on
// controller-runtime's metrics registry (served by the manager's metrics endpoint).
func DefaultMetrics() *Metrics {
	defaultMetricsOnce.Do(func() {
		defaultMetrics = NewMetrics(ctrlmetrics.Registry)
	})
	return defaultMetrics
}

// NewMetrics creates the collectors and registers them on reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "backtestpersistence_gateway_requests_total",
			Help: "HTTP requests served by the gateway, by route and result code.",
		}, []string{"route", "code"}),
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "backtestpersistence_gateway_request_duration_seconds",
			Help:    "Latency of HTTP requests served by the gateway, by route.",
			Buckets: latencyBuckets,
		}, []string{"route"}),
		opDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "backtestpersistence_store_operation_duration_seconds",
			Help:    "Latency of store operations, by kind and operation.",
			Buckets: latencyBuckets,
		}, []string{"kind", "op"}),
		opErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "backtestpersistence_store_operation_errors_total",
			Help: "Store operations that failed, by kind and operation.",
		}, []string{"kind", "op"}),
		cacheHits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "backtestpersistence_store_cache_hits_total",
			Help: "Store reads answered from the Redis cache, by kind and operation.",
		}, []string{"kind", "op"}),
		authDecisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "backtestpersistence_gateway_auth_failures_total",
			Help: "Requests refused by authentication or authorization, by code.",
		}, []string{"code"}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "backtestpersistence_gateway_panics_total",
			Help: "Requests whose handling panicked (answered 500; the process keeps serving).",
		}),
		tokenReviews: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "backtestpersistence_gateway_token_reviews_total",
			Help: "TokenReview calls the gateway made or refused to make, by result (accepted, rejected, error, throttled).",
		}, []string{"result"}),
		accessReviews: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "backtestpersistence_gateway_access_reviews_total",
			Help: "SubjectAccessReview calls the gateway made or refused to make, by result (allowed, denied, error, throttled).",
		}, []string{"result"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.requestDuration, m.opDuration, m.opErrors, m.cacheHits, m.authDecisions,
			m.panics, m.tokenReviews, m.accessReviews)
	}
	m.opObs = make([][]opChildren, len(persist.Kinds)+1)
	for ki := range m.opObs {
		kind := "other"
		if ki < len(persist.Kinds) {
			kind = string(persist.Kinds[ki].Kind)
		}
		m.opObs[ki] = make([]opChildren, len(allOps)+1)
		for oi := range m.opObs[ki] {
			op := "other"
			if oi < len(allOps) {
				op = string(allOps[oi])
			}
			m.opObs[ki][oi] = opChildren{
				duration: m.opDuration.WithLabelValues(kind, op),
				errors:   m.opErrors.WithLabelValues(kind, op),
				hits:     m.cacheHits.WithLabelValues(kind, op),
			}
		}
	}
	return m
}

var kindPosition = func() map[persist.Kind]int {
	m := make(map[persist.Kind]int, len(persist.Kinds))
	for i, k := range persist.Kinds {
		m[k.Kind] = i
	}
	return m
}()

func opPosition(op persist.Op) int {
	for i, o := range allOps {
		if o == op {
			return i
		}
	}
	return len(allOps)
}

func (m *Metrics) children(kind persist.Kind, op persist.Op) *opChildren {
	ki, ok := kindPosition[kind]
	if !ok {
		ki = len(persist.Kinds)
	}
	return &m.opObs[ki][opPosition(op)]
}

// Observe implements persist.Observer. Errors that are the caller's fault
// (invalid or too large) are not counted as store errors.
func (m *Metrics) Observe(kind persist.Kind, op persist.Op, d time.Duration, err error, cacheHit bool) {
	c := m.children(kind, op)
	c.duration.Observe(d.Seconds())
	if err != nil && !errors.Is(err, persist.ErrInvalid) && !errors.Is(err, persist.ErrTooLarge) {
		c.errors.Inc()
	}
	if cacheHit {
		c.hits.Inc()
	}
}

// observeRequest records one HTTP request.
func (m *Metrics) observeRequest(route string, code Code, d time.Duration) {
	c := "OK"
	if code != "" {
		c = string(code)
	}
	m.requests.WithLabelValues(route, c).Inc()
	m.requestDuration.WithLabelValues(route).Observe(d.Seconds())
	if code == CodeUnauthorized || code == CodeForbidden {
		m.authDecisions.WithLabelValues(c).Inc()
	}
}

// tenantCounter is what the tenants gauge reads.
type tenantCounter interface {
	Counts() (serving, unavailable int)
}

// tenantGauges exports how many tenants the registries of this process serve and how
// many they do not, on controller-runtime's registry (a process normally has one
// registry; tests run several).
var tenantGauges struct {
	once sync.Once
	mu   sync.Mutex
	regs map[tenantCounter]struct{}
}

// RegisterTenantGauges adds r to the backtestpersistence_gateway_tenants gauge and
// returns a func that removes it.
func RegisterTenantGauges(r tenantCounter) func() {
	tenantGauges.once.Do(func() {
		tenantGauges.regs = map[tenantCounter]struct{}{}
		for _, state := range []string{"serving", "unavailable"} {
			serving := state == "serving"
			ctrlmetrics.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name:        "backtestpersistence_gateway_tenants",
				Help:        "Tenants known to this replica's registry, by state.",
				ConstLabels: prometheus.Labels{"state": state},
			}, func() float64 {
				tenantGauges.mu.Lock()
				defer tenantGauges.mu.Unlock()
				n := 0
				for r := range tenantGauges.regs {
					s, u := r.Counts()
					if serving {
						n += s
					} else {
						n += u
					}
				}
				return float64(n)
			}))
		}
	})
	tenantGauges.mu.Lock()
	tenantGauges.regs[r] = struct{}{}
	tenantGauges.mu.Unlock()
	return func() {
		tenantGauges.mu.Lock()
		delete(tenantGauges.regs, r)
		tenantGauges.mu.Unlock()
	}
}
