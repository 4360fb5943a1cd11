package integration

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/backtestpersistence/operator/internal/loadgen"
)

// The cost of unauthenticated clients, in the gateway's process (this test
// process; the load client of the cached reads runs in its own, internal/loadgen):
//
//   - 64 connections without a token, each declaring an 8 MiB body and sending all
//     of it but the last byte, over and over: the growth of the process's RSS over
//     its level before (sampled from /proc every 20 ms), and the p99 of a worker's
//     cached reads in the same run against their p99 without the flood;
//
//   - 10,000 requests with random JWT-shaped tokens: how many TokenReviews they
//     cause, and that a worker's requests keep succeeding meanwhile.
//
//     go test ./internal/gateway/integration -run '^$' -bench Flood -benchtime 1x
func BenchmarkFlood(b *testing.B) {
	prepare(b)
	a, g := suite.a, suite.gws[0]
	want := `{"value":{"price":50000.5,"symbol":"BTC/USDT","open":true}}`
	bodies := make([]string, loadClients)
	for w := range bodies {
		bodies[w] = `{"kind":"state","op":"read","key":` + benchKey(w) + `}`
	}
	u, _ := url.Parse(g.url)
	reads := func() loadgen.Result {
		res, err := loadgen.RunProcess(loadgen.Config{
			Addr: u.Host, TLS: true, CAPEM: suite.certPEM, Path: opsPath(a.ns, a.name), Token: suite.tokens["a-writer"],
			Bodies: bodies, Want: want, Workers: 8, Requests: 20000, Warmup: 20,
		})
		if err != nil {
			b.Fatal(err)
		}
		return res
	}
	// Each attacker connection reconnects as soon as it is closed (flat-out), or a
	// second later (paced: the 64 connections are held, as in the scenario).
	for _, pause := range []time.Duration{0, time.Second} {
		name := "anonymous-8MiB-bodies/flat-out"
		if pause > 0 {
			name = "anonymous-8MiB-bodies/paced"
		}
		b.Run(name, func(b *testing.B) {
			unloaded := reads()
			before := rssBytes(b)
			ctx, cancel := context.WithCancel(context.Background())
			var peak atomic.Int64
			var wg sync.WaitGroup
			wg.Add(1)
			go func() { // sample RSS
				defer wg.Done()
				for ctx.Err() == nil {
					if r := rssBytes(b); r > peak.Load() {
						peak.Store(r)
					}
					time.Sleep(20 * time.Millisecond)
				}
			}()
			var answered atomic.Int64
			body := bytes.Repeat([]byte("x"), 8<<20-1) // shared by the attackers: one buffer
			head := []byte("POST " + opsPath(a.ns, a.name) + " HTTP/1.1\r\nHost: gw\r\nContent-Length: " + strconv.Itoa(8<<20) + "\r\n\r\n")
			for range 64 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for ctx.Err() == nil {
						if anonymousBody(u.Host, head, body) {
							answered.Add(1)
						}
						time.Sleep(pause)
					}
				}()
			}
			time.Sleep(2 * time.Second) // let the flood build up
			loaded := reads()
			cancel()
			wg.Wait()
			growth := peak.Load() - before
			b.ReportMetric(float64(before)/(1<<20), "rss-before-MiB")
			b.ReportMetric(float64(growth)/(1<<20), "rss-growth-MiB")
			b.ReportMetric(float64(answered.Load()), "anonymous-answered")
			b.ReportMetric(float64(unloaded.P99.Microseconds()), "unloaded-p99-µs")
			b.ReportMetric(float64(loaded.P99.Microseconds()), "loaded-p99-µs")
			b.ReportMetric(float64(loaded.P99)/float64(unloaded.P99), "p99-ratio")
			b.ReportMetric(0, "ns/op")
		})
	}
	b.Run("random-jwt-tokens", func(b *testing.B) {
		reviews0 := tokenReviews(b)
		var status sync.Map
		var next atomic.Int64
		var workerFailures atomic.Int64
		var wg sync.WaitGroup
		stop := make(chan struct{})
		go func() { // a worker keeps reading meanwhile
			for {
				select {
				case <-stop:
					return
				default:
				}
				if s, _ := post(g, suite.tokens["a-writer"], opsPath(a.ns, a.name), bodies[0]); s != 200 {
					workerFailures.Add(1)
				}
			}
		}()
		for range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for next.Add(1) <= 10000 {
					s, _ := post(g, randomJWT(), opsPath(a.ns, a.name), "")
					n, _ := status.LoadOrStore(s, new(atomic.Int64))
					n.(*atomic.Int64).Add(1)
				}
			}()
		}
		wg.Wait()
		close(stop)
		reviews1 := tokenReviews(b)
		for _, r := range []string{"accepted", "rejected", "error", "throttled", "malformed"} {
			b.ReportMetric(reviews1[r]-reviews0[r], "reviews-"+r)
		}
		status.Range(func(k, v any) bool {
			b.ReportMetric(float64(v.(*atomic.Int64).Load()), fmt.Sprint("status-", k))
			return true
		})
		b.ReportMetric(float64(workerFailures.Load()), "worker-failures")
		b.ReportMetric(0, "ns/op")
	})
}

// anonymousBody sends one request without a token whose body lacks its last byte
// and reports whether an answer came.
func anonymousBody(addr string, head, body []byte) bool {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(suite.certPEM)
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	if err != nil {
		time.Sleep(10 * time.Millisecond)
		return false
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	go func() {
		_, _ = conn.Write(head)
		_, _ = conn.Write(body)
	}()
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return false
	}
	res.Body.Close()
	return res.StatusCode == 401
}

func randomJWT() string {
	enc := base64.RawURLEncoding.EncodeToString
	var sig [64]byte
	_, _ = rand.Read(sig[:])
	return enc([]byte(`{"alg":"RS256","kid":"k"}`)) + "." + enc([]byte(`{"sub":"system:serviceaccount:x:`+enc(sig[:8])+`"}`)) + "." + enc(sig[:])
}

// rssBytes is the resident set size of this process.
func rssBytes(b *testing.B) int64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	b.Fatal("no VmRSS in /proc/self/status")
	return 0
}

// tokenReviews reads the TokenReview counter by result (both replicas of the suite count into it).
func tokenReviews(b *testing.B) map[string]float64 {
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		b.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "backtestpersistence_gateway_token_reviews_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" {
					out[l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}
