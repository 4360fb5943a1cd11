package integration

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/backtestpersistence/operator/internal/gateway"
	"github.com/backtestpersistence/operator/internal/loadgen"
	"github.com/backtestpersistence/operator/internal/persist"
)

// The loopback load test of the gateway: 32 concurrent keep-alive connections send
// cached reads or writes of tenant A through the gateway (TLS, and plain HTTP as
// with --gateway-insecure) from a load client in its own process (internal/loadgen),
// and the same operations go straight to a store on the same database and Redis,
// for comparison. Each benchmark reports requests per second, the p50 and p99
// latency of its b.N operations, and (gateway runs) the CPU time per request of the
// gateway's process, redis-server and the load client. Run with:
//
//	go test ./internal/gateway/integration -run '^$' -bench . -benchtime 20000x
const loadClients = 32

// loadResult is what one load run measured.
type loadResult struct {
	rps      float64
	p50, p99 time.Duration
}

// runLoad runs n operations on `clients` goroutines, each calling op(worker), and
// measures each one. Any failed operation fails the benchmark.
func runLoad(b *testing.B, n, clients int, op func(worker int) error) loadResult {
	b.Helper()
	lat := make([]time.Duration, n)
	var next atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < clients; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) || failed.Load() != nil {
					return
				}
				t0 := time.Now()
				if err := op(w); err != nil {
					failed.Store(err)
					return
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	slices.Sort(lat)
	return loadResult{
		rps: float64(n) / elapsed.Seconds(),
		p50: lat[n*50/100],
		p99: lat[min(n-1, n*99/100)],
	}
}

func report(b *testing.B, r loadResult) {
	b.ReportMetric(r.rps, "req/s")
	b.ReportMetric(float64(r.p50.Microseconds()), "p50-µs")
	b.ReportMetric(float64(r.p99.Microseconds()), "p99-µs")
	b.ReportMetric(0, "ns/op") // wall time per op is meaningless with 32 clients; rps says it
}

func benchKey(w int) string { return fmt.Sprintf(`{"signalId":"bench-%d","bucketName":"load"}`, w) }

// plainServer serves the first instance's handler over plain HTTP, as --gateway-insecure does.
func plainServer(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv := &gateway.Server{Listener: ln, Handler: suite.gws[0].gw.Handler}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Start(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
	return "http://" + ln.Addr().String()
}

// noopServer answers every request with body, over plain HTTP on the same server
// implementation and settings as the gateway.
func noopServer(b *testing.B, body []byte) string {
	return fastServer(b, func(rc *fasthttp.RequestCtx) {
		rc.SetContentType("application/json")
		rc.SetBody(body)
	})
}

// fastServer serves handler over plain HTTP on a loopback port until the benchmark
// ends, on fasthttp with the gateway's header setting, and returns its URL.
func fastServer(b *testing.B, handler fasthttp.RequestHandler) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: handler, NoDefaultServerHeader: true}
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(func() { _ = srv.Shutdown() })
	return "http://" + ln.Addr().String()
}

// storeServer answers every request with a cached read of the tenant's store, over
// plain HTTP on the same server implementation as noopServer, and nothing else: no
// authentication, decoding, authorization or metrics. Its requests read the
// workers' keys in turn, on a store opened as the suite's direct one (same database,
// prefix and cache identity, so its reads are hits; one that is not answers 500 and
// fails the run). It is the floor under the gateway's CPU per cached read that the
// gateway's own request handling cannot go below: HTTP plus the store's Redis round
// trip. Opening it may rotate the tenant's cache epoch (a store that finds none
// of its identity's starts one), which empties what prepare filled: its warm-up
// below reads until every key is a hit again, and the gateway's rounds check theirs.
func storeServer(b *testing.B, tn *tenantEnv) string {
	var misses missCounter
	rdb := tn.redis.Client()
	opts := tn.directOptions(rdb)
	opts.Observer = &misses
	store, err := persist.Open(opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close(); _ = rdb.Close() })
	reqs := make([]persist.Request, loadClients)
	for w := range reqs {
		reqs[w] = persist.Request{Kind: persist.KindState, Op: persist.OpRead,
			Key: map[string]any{"signalId": fmt.Sprintf("bench-%d", w), "bucketName": "load"}}
	}
	// Its cache is usable once its first health check has passed: read until a pass
	// over the keys is all hits.
	for deadline := time.Now().Add(10 * time.Second); ; {
		before := misses.n.Load()
		for _, r := range reqs {
			if _, err := store.Do(context.Background(), r); err != nil {
				b.Fatal(err)
			}
		}
		if misses.n.Load() == before {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("the store server's reads are not cache hits")
		}
		time.Sleep(100 * time.Millisecond)
	}
	var next atomic.Uint64
	return fastServer(b, func(rc *fasthttp.RequestCtx) {
		before := misses.n.Load()
		res, err := store.Do(context.Background(), reqs[next.Add(1)%loadClients])
		if err != nil || len(res.Value) == 0 || misses.n.Load() != before {
			rc.SetStatusCode(fasthttp.StatusInternalServerError)
			return
		}
		rc.SetContentType("application/json")
		rc.SetBody(append(append([]byte(`{"value":`), res.Value...), '}'))
	})
}

// redisServer answers every request with the value of one Redis GET, through an
// autopipeliner on its own client of the tenant's redis-server: the floor of a
// server that fetches each answer from Redis, whatever it does with it.
func redisServer(b *testing.B, tn *tenantEnv, body []byte) string {
	rdb := tn.redis.Client()
	b.Cleanup(func() { _ = rdb.Close() })
	ap, err := rdb.AutoPipeline()
	if err != nil {
		b.Fatal(err)
	}
	const key = "bench:redis-floor"
	if err := rdb.Set(context.Background(), key, body, time.Hour).Err(); err != nil {
		b.Fatal(err)
	}
	return fastServer(b, func(rc *fasthttp.RequestCtx) {
		v, err := ap.Get(context.Background(), key).Bytes()
		if err != nil {
			rc.SetStatusCode(fasthttp.StatusInternalServerError)
			return
		}
		rc.SetContentType("application/json")
		rc.SetBody(v)
	})
}

// missCounter counts the store's reads that a cache hit did not serve.
type missCounter struct{ n atomic.Int64 }

func (m *missCounter) Observe(_ persist.Kind, op persist.Op, _ time.Duration, _ error, hit bool) {
	if op == persist.OpRead && !hit {
		m.n.Add(1)
	}
}

// prepare writes each worker's key once and reads it, so reads are cache hits.
func prepare(b *testing.B) {
	ctx := context.Background()
	for w := 0; w < loadClients; w++ {
		req := persist.Request{Kind: persist.KindState, Op: persist.OpWrite, Key: map[string]any{"signalId": fmt.Sprintf("bench-%d", w), "bucketName": "load"},
			Value: []byte(`{"price":50000.5,"symbol":"BTC/USDT","open":true}`), When: new(int64(1))}
		if _, err := suite.a.direct.Do(ctx, req); err != nil {
			b.Fatal(err)
		}
		req.Op, req.Value, req.When = persist.OpRead, nil, nil
		if _, err := suite.a.direct.Do(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

// gatewayLoad runs n requests of bodies against the gateway at baseURL with the load
// client in its own process, and reports the CPU time per request of the gateway's
// process, redis-server and the client next to throughput and latency.
func gatewayLoad(b *testing.B, baseURL string, bodies []string, want string) {
	u, err := url.Parse(baseURL)
	if err != nil {
		b.Fatal(err)
	}
	a := suite.a
	res, err := loadgen.RunProcess(loadgen.Config{
		Addr: u.Host, TLS: u.Scheme == "https", CAPEM: suite.certPEM,
		Path: opsPath(a.ns, a.name), Token: suite.tokens["a-writer"], Bodies: bodies, Want: want,
		Workers: loadClients, Requests: b.N, Warmup: 20,
		Watch: map[string]int{"gateway": os.Getpid(), "redis": a.redis.PID()},
	})
	if err != nil {
		b.Fatal(err)
	}
	report(b, loadResult{rps: res.RPS, p50: res.P50, p99: res.P99})
	b.ReportMetric(float64(res.P999.Microseconds()), "p999-µs")
	perReq := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(res.Requests) }
	b.ReportMetric(perReq(res.CPU["gateway"]), "gw-cpu-µs/req")
	b.ReportMetric(perReq(res.CPU["redis"]), "redis-cpu-µs/req")
	b.ReportMetric(perReq(res.ClientCPU), "client-cpu-µs/req")
}

func BenchmarkGateway(b *testing.B) {
	prepare(b)
	a := suite.a
	want := []byte(`{"value":{"price":50000.5,"symbol":"BTC/USDT","open":true}}`)
	reads := make([][]byte, loadClients)
	for w := range reads {
		reads[w] = []byte(`{"kind":"state","op":"read","key":` + benchKey(w) + `}`)
	}
	var seq atomic.Int64
	readBodies := make([]string, loadClients)
	writeBodies := make([]string, loadClients)
	for w := range loadClients {
		readBodies[w] = string(reads[w])
		writeBodies[w] = `{"kind":"state","op":"write","key":` + benchKey(w) + `,"value":{"price":50000.5,"symbol":"BTC/USDT","open":true},"when":` + loadgen.SeqPlaceholder + `}`
	}
	targets := []struct{ name, url string }{{"tls", suite.gws[0].url}, {"plain", plainServer(b)}}
	for _, tg := range targets {
		b.Run(tg.name+"/cached-read", func(b *testing.B) { gatewayLoad(b, tg.url, readBodies, string(want)) })
		b.Run(tg.name+"/write", func(b *testing.B) { gatewayLoad(b, tg.url, writeBodies, `{}`) })
	}
	// The machine's floor: the same client against an HTTP server that answers the
	// cached read's response without doing anything (no auth, no store).
	b.Run("noop-server/plain", func(b *testing.B) { gatewayLoad(b, noopServer(b, want), readBodies, string(want)) })
	ctx := context.Background()
	b.Run("store/cached-read", func(b *testing.B) {
		report(b, runLoad(b, b.N, loadClients, func(w int) error {
			res, err := a.direct.Do(ctx, persist.Request{Kind: persist.KindState, Op: persist.OpRead,
				Key: map[string]any{"signalId": fmt.Sprintf("bench-%d", w), "bucketName": "load"}})
			if err == nil && len(res.Value) == 0 {
				err = fmt.Errorf("empty read")
			}
			return err
		}))
	})
	b.Run("store/write", func(b *testing.B) {
		report(b, runLoad(b, b.N, loadClients, func(w int) error {
			_, err := a.direct.Do(ctx, persist.Request{Kind: persist.KindState, Op: persist.OpWrite,
				Key:   map[string]any{"signalId": fmt.Sprintf("bench-%d", w), "bucketName": "load"},
				Value: []byte(`{"price":50000.5,"symbol":"BTC/USDT","open":true}`), When: new(seq.Add(1))})
			return err
		}))
	})
}

// BenchmarkGatewayRatios states the gateway's targets as ratios to the no-op server
// measured in the same run: cached reads at least 0.6x its throughput, p99 at most
// 1.5x its p99, gateway CPU per read at most 2x its CPU per request. Each of three
// rounds runs the no-op server, two floors (redisServer: one Redis GET per request;
// storeServer: one cached read of the store per request, nothing else), the gateway
// over plain HTTP and over TLS, b.N requests each, back to back, so drift of the
// shared machine hits all alike; the ratios compare sums (throughput, CPU) and
// medians (p99) over the rounds.
func BenchmarkGatewayRatios(b *testing.B) {
	prepare(b)
	want := `{"value":{"price":50000.5,"symbol":"BTC/USDT","open":true}}`
	bodies := make([]string, loadClients)
	for w := range bodies {
		bodies[w] = `{"kind":"state","op":"read","key":` + benchKey(w) + `}`
	}
	a := suite.a
	u := map[string]string{"noop": noopServer(b, []byte(want)), "redis": redisServer(b, a, []byte(want)), "store": storeServer(b, a),
		"plain": plainServer(b), "tls": suite.gws[0].url}
	type sums struct {
		elapsed time.Duration
		cpu     time.Duration
		reqs    int
		p99     []time.Duration
	}
	got := map[string]*sums{"noop": {}, "redis": {}, "store": {}, "plain": {}, "tls": {}}
	for round := 0; round < 3; round++ {
		for _, name := range []string{"noop", "redis", "store", "plain", "tls"} {
			pu, err := url.Parse(u[name])
			if err != nil {
				b.Fatal(err)
			}
			hits, ops := cacheHits("state", "read"), storeOps("state", "read")
			res, err := loadgen.RunProcess(loadgen.Config{
				Addr: pu.Host, TLS: pu.Scheme == "https", CAPEM: suite.certPEM,
				Path: opsPath(a.ns, a.name), Token: suite.tokens["a-writer"], Bodies: bodies, Want: want,
				Workers: loadClients, Requests: b.N, Warmup: 20,
				Watch: map[string]int{"server": os.Getpid()},
			})
			if err != nil {
				b.Fatal(err)
			}
			// Cached reads, or the comparison is void: each gateway read (warm-up
			// included) was a hit.
			if served, all := cacheHits("state", "read")-hits, storeOps("state", "read")-ops; (name == "plain" || name == "tls") && (served != all || all < float64(res.Requests)) {
				b.Fatalf("%s round %d: %v of %v reads were cache hits (%d measured)", name, round, served, all, res.Requests)
			}
			s := got[name]
			s.elapsed += res.Elapsed
			s.cpu += res.CPU["server"]
			s.reqs += res.Requests
			s.p99 = append(s.p99, res.P99)
		}
	}
	rps := func(s *sums) float64 { return float64(s.reqs) / s.elapsed.Seconds() }
	cpu := func(s *sums) float64 { return float64(s.cpu.Nanoseconds()) / 1e3 / float64(s.reqs) }
	p99 := func(s *sums) float64 {
		slices.Sort(s.p99)
		return float64(s.p99[len(s.p99)/2].Microseconds())
	}
	noop := got["noop"]
	b.ReportMetric(rps(noop), "noop-req/s")
	b.ReportMetric(p99(noop), "noop-p99-µs")
	b.ReportMetric(cpu(noop), "noop-cpu-µs/req")
	for _, name := range []string{"redis", "store", "plain", "tls"} {
		s := got[name]
		b.ReportMetric(rps(s), name+"-req/s")
		b.ReportMetric(p99(s), name+"-p99-µs")
		b.ReportMetric(cpu(s), name+"-cpu-µs/req")
		b.ReportMetric(rps(s)/rps(noop), name+"-throughput-ratio")
		b.ReportMetric(p99(s)/p99(noop), name+"-p99-ratio")
		b.ReportMetric(cpu(s)/cpu(noop), name+"-cpu-ratio")
	}
	b.ReportMetric(0, "ns/op")
}
