// Package loadgen is a lean closed-loop HTTP/1.1 load client for benchmarks of the
// gateway: each of N workers holds one keep-alive connection (TLS or plain) and
// sends prepared requests back to back, so the measurement costs a write and a read
// per request instead of a full HTTP client's bookkeeping. It reports requests per
// second, latency percentiles and the CPU time the client itself used.
//
// The benchmark runs it in its own process (the test binary re-executed with
// EnvVar set), so the load client does not share the gateway's Go runtime.
package loadgen

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// EnvVar names the environment variable that tells a re-executed test binary to run
// the load client (config as JSON on stdin, Result as JSON on stdout).
const EnvVar = "BTP_LOADGEN"

// SeqPlaceholder in a request body is replaced by a number unique to each request
// (strictly increasing per worker), for writes that must carry a new timestamp.
const SeqPlaceholder = "$SEQ"

// Config is one load run.
type Config struct {
	// Addr is host:port of the server.
	Addr string `json:"addr"`
	// TLS with CAPEM as the only trusted root (ServerName defaults to the host of Addr).
	TLS        bool   `json:"tls,omitempty"`
	CAPEM      []byte `json:"caPEM,omitempty"`
	ServerName string `json:"serverName,omitempty"`
	// Path, Token and Bodies (one per worker, cycled when fewer) make the requests: POST Path
	// with "Authorization: Bearer Token" and a JSON body.
	Path   string   `json:"path"`
	Token  string   `json:"token,omitempty"`
	Bodies []string `json:"bodies"`
	// Want, when set, is the exact response body every request must get (status 200 always).
	Want string `json:"want,omitempty"`
	// Workers is the number of concurrent connections; Requests the total to send.
	Workers  int `json:"workers"`
	Requests int `json:"requests"`
	// Warmup requests per worker are sent first and not measured.
	Warmup int `json:"warmup,omitempty"`
	// Watch names processes (by pid) whose CPU time over the measured span is reported,
	// for example the gateway's process and redis-server.
	Watch map[string]int `json:"watch,omitempty"`
}

// Result is what a run measured.
type Result struct {
	Requests int           `json:"requests"`
	Elapsed  time.Duration `json:"elapsed"`
	RPS      float64       `json:"rps"`
	P50      time.Duration `json:"p50"`
	P90      time.Duration `json:"p90"`
	P99      time.Duration `json:"p99"`
	P999     time.Duration `json:"p999"`
	Max      time.Duration `json:"max"`
	// ClientCPU is the user+system CPU time of the load client's process during the run.
	ClientCPU time.Duration `json:"clientCPU"`
	// CPU is the CPU time of each watched process during the run.
	CPU map[string]time.Duration `json:"cpu,omitempty"`
}

// Run executes cfg. Any failed request (network error, status other than 200, body
// other than Want) stops the run with an error that quotes the response.
func Run(cfg Config) (Result, error) {
	if cfg.Workers <= 0 || cfg.Requests <= 0 || len(cfg.Bodies) == 0 {
		return Result{}, errors.New("loadgen: workers, requests and bodies are required")
	}
	workers := make([]*worker, cfg.Workers)
	for i := range workers {
		w, err := dial(cfg, i)
		if err != nil {
			for _, o := range workers[:i] {
				o.conn.Close()
			}
			return Result{}, err
		}
		workers[i] = w
	}
	defer func() {
		for _, w := range workers {
			w.conn.Close()
		}
	}()
	for _, w := range workers {
		for range cfg.Warmup {
			if _, err := w.do(); err != nil {
				return Result{}, fmt.Errorf("warm-up: %w", err)
			}
		}
	}

	lat := make([]time.Duration, cfg.Requests)
	var next atomic.Int64
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	watch0 := watchCPU(cfg.Watch)
	cpu0 := CPUTime()
	start := time.Now()
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for failed.Load() == nil {
				i := next.Add(1) - 1
				if i >= int64(len(lat)) {
					return
				}
				d, err := w.do()
				if err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
				lat[i] = d
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := CPUTime() - cpu0
	watch1 := watchCPU(cfg.Watch)
	if err := failed.Load(); err != nil {
		return Result{}, *err
	}
	res := summarize(lat, elapsed, cpu)
	for name, t := range watch1 {
		if t0, ok := watch0[name]; ok {
			if res.CPU == nil {
				res.CPU = map[string]time.Duration{}
			}
			res.CPU[name] = t - t0
		}
	}
	return res, nil
}

// summarize turns per-request latencies into a Result.
func summarize(lat []time.Duration, elapsed, cpu time.Duration) Result {
	slices.Sort(lat)
	n := len(lat)
	at := func(p float64) time.Duration { return lat[min(n-1, int(float64(n)*p))] }
	return Result{
		Requests:  n,
		Elapsed:   elapsed,
		RPS:       float64(n) / elapsed.Seconds(),
		P50:       at(0.50),
		P90:       at(0.90),
		P99:       at(0.99),
		P999:      at(0.999),
		Max:       lat[n-1],
		ClientCPU: cpu,
	}
}

// worker is one keep-alive connection with its prepared request.
type worker struct {
	conn   net.Conn
	r      *bufio.Reader
	head   []byte // request line and headers up to "Content-Length: "
	body   []byte
	seqAt  int // index of SeqPlaceholder in body, or -1
	seq    int64
	want   []byte
	buf    []byte
	respBo []byte
}

func dial(cfg Config, i int) (*worker, error) {
	var conn net.Conn
	var err error
	if cfg.TLS {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(cfg.CAPEM) {
			return nil, errors.New("loadgen: no certificate in CAPEM")
		}
		name := cfg.ServerName
		if name == "" {
			name, _, _ = net.SplitHostPort(cfg.Addr)
		}
		conn, err = tls.Dial("tcp", cfg.Addr, &tls.Config{RootCAs: pool, ServerName: name, MinVersion: tls.VersionTLS12})
	} else {
		conn, err = net.Dial("tcp", cfg.Addr)
	}
	if err != nil {
		return nil, fmt.Errorf("loadgen: dial %s: %w", cfg.Addr, err)
	}
	host, _, _ := net.SplitHostPort(cfg.Addr)
	head := fmt.Appendf(nil, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n", cfg.Path, host)
	if cfg.Token != "" {
		head = fmt.Appendf(head, "Authorization: Bearer %s\r\n", cfg.Token)
	}
	head = append(head, "Content-Length: "...)
	body := []byte(cfg.Bodies[i%len(cfg.Bodies)])
	return &worker{
		conn:  conn,
		r:     bufio.NewReaderSize(conn, 16<<10),
		head:  head,
		body:  body,
		seqAt: bytes.Index(body, []byte(SeqPlaceholder)),
		seq:   int64(i) << 40, // distinct per worker, increasing within it
		want:  []byte(cfg.Want),
		buf:   make([]byte, 0, len(head)+len(body)+64),
	}, nil
}

// do sends one request and reads its response, returning the latency.
func (w *worker) do() (time.Duration, error) {
	b := w.buf[:0]
	b = append(b, w.head...)
	if w.seqAt < 0 {
		b = strconv.AppendInt(b, int64(len(w.body)), 10)
		b = append(b, "\r\n\r\n"...)
		b = append(b, w.body...)
	} else {
		w.seq++
		num := strconv.AppendInt(nil, w.seq, 10)
		b = strconv.AppendInt(b, int64(len(w.body)-len(SeqPlaceholder)+len(num)), 10)
		b = append(b, "\r\n\r\n"...)
		b = append(b, w.body[:w.seqAt]...)
		b = append(b, num...)
		b = append(b, w.body[w.seqAt+len(SeqPlaceholder):]...)
	}
	w.buf = b
	t0 := time.Now()
	if _, err := w.conn.Write(b); err != nil {
		return 0, fmt.Errorf("loadgen: write: %w", err)
	}
	status, body, err := w.readResponse()
	d := time.Since(t0)
	if err != nil {
		return 0, err
	}
	if status != 200 || (len(w.want) > 0 && !bytes.Equal(body, w.want)) {
		return 0, fmt.Errorf("loadgen: got %d %s", status, body)
	}
	return d, nil
}

// readResponse reads one HTTP/1.1 response with a Content-Length body.
func (w *worker) readResponse() (status int, body []byte, err error) {
	line, err := w.r.ReadSlice('\n')
	if err != nil {
		return 0, nil, fmt.Errorf("loadgen: read status: %w", err)
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, nil, fmt.Errorf("loadgen: malformed status line %q", line)
	}
	status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, nil, fmt.Errorf("loadgen: malformed status line %q", line)
	}
	length := -1
	for {
		h, err := w.r.ReadSlice('\n')
		if err != nil {
			return 0, nil, fmt.Errorf("loadgen: read header: %w", err)
		}
		h = bytes.TrimRight(h, "\r\n")
		if len(h) == 0 {
			break
		}
		name, value, ok := bytes.Cut(h, []byte(":"))
		if !ok {
			return 0, nil, fmt.Errorf("loadgen: malformed header %q", h)
		}
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(bytes.TrimSpace(value))); err != nil {
				return 0, nil, fmt.Errorf("loadgen: bad Content-Length %q", value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			return 0, nil, fmt.Errorf("loadgen: Transfer-Encoding %q is not supported", value)
		}
	}
	if length < 0 {
		return 0, nil, errors.New("loadgen: response without Content-Length")
	}
	if cap(w.respBo) < length {
		w.respBo = make([]byte, length)
	}
	body = w.respBo[:length]
	if _, err := io.ReadFull(w.r, body); err != nil {
		return 0, nil, fmt.Errorf("loadgen: read body: %w", err)
	}
	return status, body, nil
}

// CPUTime is the process's user+system CPU time so far.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// watchCPU reads the CPU time of each process in pids from /proc (processes that
// cannot be read are left out).
func watchCPU(pids map[string]int) map[string]time.Duration {
	out := map[string]time.Duration{}
	for name, pid := range pids {
		if t, err := procCPU(pid); err == nil {
			out[name] = t
		}
	}
	return out
}

// procCPU is utime+stime of a process from /proc/<pid>/stat.
func procCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may contain spaces; fields after it are fixed.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, fmt.Errorf("loadgen: malformed /proc/%d/stat", pid)
	}
	f := bytes.Fields(data[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("loadgen: malformed /proc/%d/stat", pid)
	}
	// Fields 14 and 15 (utime, stime) are f[11] and f[12], in clock ticks (100 per second on Linux).
	u, err1 := strconv.ParseInt(string(f[11]), 10, 64)
	s, err2 := strconv.ParseInt(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("loadgen: malformed /proc/%d/stat", pid)
	}
	return time.Duration(u+s) * 10 * time.Millisecond, nil
}
