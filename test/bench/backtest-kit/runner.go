package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// closedSignal is one closed position as run.mjs reports it.
type closedSignal struct {
	ID              string  `json:"id"`
	Symbol          string  `json:"symbol"`
	Position        string  `json:"position"`
	PriceOpen       float64 `json:"priceOpen"`
	PriceTakeProfit float64 `json:"priceTakeProfit"`
	PriceStopLoss   float64 `json:"priceStopLoss"`
	PriceClose      float64 `json:"priceClose"`
	PnlPercentage   float64 `json:"pnlPercentage"`
	CloseReason     string  `json:"closeReason"`
	CloseTimestamp  int64   `json:"closeTimestamp"`
}

// outcome is what run.mjs writes (persistence: the client's Stats snapshot).
type outcome struct {
	Closed      []closedSignal `json:"closed"`
	Opened      []string       `json:"opened"`
	Errors      []string       `json:"errors"`
	WallMs      float64        `json:"wallMs"`
	Ticks       int            `json:"ticks"`
	MissedTicks int            `json:"missedTicks"`
	Aborted     bool           `json:"aborted"`
	Error       string         `json:"error"`
	Persistence struct {
		Calls         int     `json:"calls"`
		Ms            float64 `json:"ms"`
		BusyMs        float64 `json:"busyMs"`
		Errors        int     `json:"errors"`
		WriteRequests int     `json:"writeRequests"` // requests with writes this project's client sent
		Kinds         map[string]struct {
			Calls   int     `json:"calls"`
			Ms      float64 `json:"ms"`
			Methods map[string]struct {
				Calls  int     `json:"calls"`
				Ms     float64 `json:"ms"`
				Errors int     `json:"errors"`
			} `json:"methods"`
		} `json:"kinds"`
	} `json:"persistence"`
}

var errTimeout = errors.New("timed out")

// result is one scenario on one backend.
type result struct {
	Scenario string  `json:"scenario"`
	Backend  string  `json:"backend"`
	Tag      string  `json:"tag"`
	Outcome  outcome `json:"outcome"`
	// Failure is why the run did not reach its end (aborted, timed out, crashed).
	Failure string `json:"failure,omitempty"`
	// Incomplete is why a run that reached its end is not a full run: persistence
	// calls failed or minutes were not ticked. Its time is reported, its signals are
	// not compared.
	Incomplete string `json:"incomplete,omitempty"`
	// FloorMs is the raw-driver floor of this project's run (floor.go): as many
	// sequential upserts as its client sent requests with writes.
	FloorMs float64 `json:"floorMs,omitempty"`
}

// ran reports whether the run reached its end.
func (r result) ran() bool { return r.Failure == "" }

// completed reports whether the run reached its end with every call and tick succeeding.
func (r result) completed() bool { return r.Failure == "" && r.Incomplete == "" }

func (r result) summary() string {
	p := r.Outcome.Persistence
	s := fmt.Sprintf("%s/%s: %d closed, wall %.1f s, busy %.2f s, %d calls, %d framework errors",
		r.Scenario, r.Backend, len(r.Outcome.Closed), r.Outcome.WallMs/1000, p.BusyMs/1000, p.Calls, len(r.Outcome.Errors))
	if !r.ran() {
		s += ": " + r.Failure
	} else if r.Incomplete != "" {
		s += ": incomplete: " + r.Incomplete
	}
	return s
}

// runOne runs run.mjs for one scenario on one backend, each on fresh data: its own
// folder (file adapters), its own MongoDB database and a flushed Redis database
// (@backtest-kit/mongo), its own exchange and strategy names (the gateway's tenant).
func runOne(ctx context.Context, o options, st *stack, benchDir, scenario, backend string) result {
	tag := scenario + "-" + backend
	r := result{Scenario: scenario, Backend: backend, Tag: tag}
	dir := filepath.Join(o.workDir, tag)
	out := filepath.Join(o.workDir, tag+".json")
	args := []string{filepath.Join(benchDir, "run.mjs"), "--scenario", scenario, "--backend", backend,
		"--dir", dir, "--out", out, "--tag", tag}
	switch scenario {
	case "defaults":
		args = append(args, "--days", strconv.FormatFloat(o.defaultsDays, 'f', -1, 64))
	case "full":
		args = append(args, "--days", strconv.FormatFloat(o.fullDays, 'f', -1, 64))
	case "paper":
		args = append(args, "--minutes", strconv.Itoa(o.paperMinutes))
	}
	rctx, cancel := context.WithTimeout(ctx, o.runTimeout)
	defer cancel()
	cmd := exec.CommandContext(rctx, "node", args...)
	cmd.Dir = benchDir
	cmd.Env = append(os.Environ(), backendEnv(st, backend, tag)...)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	logf("running %s on %s", scenario, backend)
	err := cmd.Run()
	_ = os.WriteFile(filepath.Join(o.workDir, tag+".log"), logs.Bytes(), 0o644)
	if b, rerr := os.ReadFile(out); rerr == nil {
		if jerr := json.Unmarshal(b, &r.Outcome); jerr != nil {
			r.Failure = fmt.Sprintf("unreadable outcome: %v", jerr)
			return r
		}
	}
	switch {
	case rctx.Err() == context.DeadlineExceeded:
		r.Failure = fmt.Sprintf("%v after %s", errTimeout, o.runTimeout)
	case r.Outcome.Aborted:
		r.Failure = "aborted: " + oneLine(r.Outcome.Error)
	case err != nil:
		r.Failure = fmt.Sprintf("%v: %s", err, oneLine(lastErrorLine(logs.String())))
	default:
		r.Incomplete = incomplete(r.Outcome, o.paperMinutes)
	}
	return r
}

// incomplete says which persistence calls failed and how many minutes were not ticked.
func incomplete(o outcome, minutes int) string {
	var parts []string
	kinds := make([]string, 0, len(o.Persistence.Kinds))
	for k := range o.Persistence.Kinds {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		for m, c := range o.Persistence.Kinds[k].Methods {
			if c.Errors > 0 {
				parts = append(parts, fmt.Sprintf("%d of %d %s.%s calls failed", c.Errors, c.Calls, k, m))
			}
		}
	}
	if o.MissedTicks > 0 {
		parts = append(parts, fmt.Sprintf("%d of %d minutes not ticked", o.MissedTicks, minutes))
	}
	return strings.Join(parts, "; ")
}

func backendEnv(st *stack, backend, tag string) []string {
	switch backend {
	case "mongo":
		return []string{
			"CC_MONGO_CONNECTION_STRING=" + st.mongoURI("bench-"+tag),
			"CC_REDIS_HOST=127.0.0.1",
			"CC_REDIS_PORT=" + st.redis.Addr()[strings.LastIndex(st.redis.Addr(), ":")+1:],
		}
	case "operator":
		if st.gatewayURL == "" {
			return nil // a given gateway: BACKTEST_PERSISTENCE_* are in the environment
		}
		return []string{
			"BACKTEST_PERSISTENCE_URL=" + st.gatewayURL,
			"BACKTEST_PERSISTENCE_NAMESPACE=" + tenantNamespace,
			"BACKTEST_PERSISTENCE_NAME=" + tenantName,
			"BACKTEST_PERSISTENCE_TOKEN_FILE=" + st.tokenFile,
		}
	}
	return nil
}

// oneLine is the first line of s, without table separators, at most 160 characters.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	s = strings.ReplaceAll(s, "|", "/")
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}

// lastErrorLine is the last line of a log that names an error, else its last line.
func lastErrorLine(log string) string {
	lines := strings.Split(strings.TrimSpace(log), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], "Error") {
			return lines[i]
		}
	}
	return lines[len(lines)-1]
}
