package main

import (
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"
)

var scenarioLabels = map[string]string{
	"defaults": "backtest, defaults (candles only)",
	"full":     "backtest, Storage/Notification/Log/State/Memory/Session/Recent persisted",
	"paper":    "paper run, @backtest-kit/cli's adapter setup",
}

var backendLabels = map[string]string{
	"file":     "file adapters",
	"mongo":    "@backtest-kit/mongo",
	"operator": "this project",
}

// report is the outcome of a benchmark run: the table, the details, the checks.
type report struct {
	o       options
	results []result
	backend string // the FerretDB backend in use
}

func newReport(o options, st *stack, results []result) *report {
	return &report{o: o, results: results, backend: st.mongo.Backend()}
}

func (r *report) get(scenario, backend string) (result, bool) {
	for _, x := range r.results {
		if x.Scenario == scenario && x.Backend == backend {
			return x, true
		}
	}
	return result{}, false
}

func (r *report) scenarioTitle(s string) string {
	switch s {
	case "defaults":
		return fmt.Sprintf("%g-day %s", r.o.defaultsDays, scenarioLabels[s])
	case "full":
		return fmt.Sprintf("%g-day %s", r.o.fullDays, scenarioLabels[s])
	default:
		return fmt.Sprintf("%d-minute %s", r.o.paperMinutes, scenarioLabels[s])
	}
}

// String is the summary table (busy seconds in persistence, ratios to this project,
// closed signals) and a table of every run.
func (r *report) String() string {
	var b strings.Builder
	servers := "FerretDB on " + r.backend
	if r.backend == "" {
		servers = "the MongoDB of MONGODB_URI"
	}
	fmt.Fprintf(&b, "\nBusy seconds in persistence (wall time with at least one persistence call in flight), %s:\n\n", servers)
	head := []string{"scenario"}
	for _, be := range r.o.backends {
		head = append(head, backendLabels[be])
	}
	if contains(r.o.backends, "operator") {
		for _, be := range r.o.backends {
			if be != "operator" {
				head = append(head, backendLabels[be]+" / this project")
			}
		}
	}
	head = append(head, "closed signals")
	row(&b, head)
	row(&b, separator(len(head), 0, len(head)-1))
	for _, s := range r.o.scenarios {
		cells := []string{r.scenarioTitle(s)}
		for _, be := range r.o.backends {
			x, _ := r.get(s, be)
			cells = append(cells, busyCell(x))
		}
		if op, ok := r.get(s, "operator"); ok {
			for _, be := range r.o.backends {
				if be == "operator" {
					continue
				}
				x, _ := r.get(s, be)
				if x.ran() && op.ran() && op.Outcome.Persistence.BusyMs > 0 {
					cells = append(cells, fmt.Sprintf("%.1fx%s", x.Outcome.Persistence.BusyMs/op.Outcome.Persistence.BusyMs, mark(x)+mark(op)))
				} else {
					cells = append(cells, "n/a")
				}
			}
		}
		cells = append(cells, r.signalsCell(s))
		row(&b, cells)
	}
	fmt.Fprintf(&b, "\nRatios are the other backend's busy seconds over this project's. (incomplete): the run reached its end but\n"+
		"persistence calls failed or minutes were not ticked (see below); its signals are not compared.\n")
	if contains(r.o.backends, "operator") {
		r.floorTable(&b)
	}
	fmt.Fprintf(&b, "\nEvery run:\n\n")
	row(&b, []string{"scenario", "backend", "wall s", "busy s", "sum s", "calls", "opened", "closed", "framework errors", "outcome"})
	row(&b, []string{"---", "---", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---"})
	for _, x := range r.results {
		p := x.Outcome.Persistence
		status := "completed"
		if !x.ran() {
			status = x.Failure
		} else if x.Incomplete != "" {
			status = "incomplete: " + x.Incomplete
		}
		row(&b, []string{x.Scenario, backendLabels[x.Backend], fmt.Sprintf("%.1f", x.Outcome.WallMs/1000), fmt.Sprintf("%.2f", p.BusyMs/1000),
			fmt.Sprintf("%.2f", p.Ms/1000), fmt.Sprint(p.Calls), fmt.Sprint(len(x.Outcome.Opened)), fmt.Sprint(len(x.Outcome.Closed)),
			fmt.Sprint(len(x.Outcome.Errors)), status})
	}
	fmt.Fprintf(&b, "\nWhere the time goes (the three methods with the most summed call time; overlapping calls add up):\n\n")
	row(&b, []string{"scenario", "backend", "methods (calls, summed s)"})
	row(&b, []string{"---", "---", "---"})
	for _, x := range r.results {
		row(&b, []string{x.Scenario, backendLabels[x.Backend], topMethods(x.Outcome, 3)})
	}
	return b.String()
}

// topMethods lists the n adapter methods of a run with the most summed call time.
func topMethods(o outcome, n int) string {
	type method struct {
		name  string
		calls int
		ms    float64
	}
	var all []method
	for k, kind := range o.Persistence.Kinds {
		for m, c := range kind.Methods {
			all = append(all, method{k + "." + m, c.Calls, c.Ms})
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].ms > all[j].ms })
	var parts []string
	for i := 0; i < len(all) && i < n; i++ {
		parts = append(parts, fmt.Sprintf("%s %d, %.2f", all[i].name, all[i].calls, all[i].ms/1000))
	}
	return strings.Join(parts, "; ")
}

// busyCell is a run's busy seconds, marked when incomplete, or why it did not end.
func busyCell(x result) string {
	if !x.ran() {
		return x.Failure
	}
	return fmt.Sprintf("%.2f%s", x.Outcome.Persistence.BusyMs/1000, mark(x))
}

// mark flags an incomplete run (see the every-run table for why).
func mark(x result) string {
	if x.ran() && x.Incomplete != "" {
		return " (incomplete)"
	}
	return ""
}

// signalsCell says how many signals each completed backend closed and whether the lists agree.
func (r *report) signalsCell(s string) string {
	var counts []string
	for _, be := range r.o.backends {
		x, _ := r.get(s, be)
		if x.ran() {
			counts = append(counts, fmt.Sprintf("%s %d%s", be, len(x.Outcome.Closed), mark(x)))
		} else {
			counts = append(counts, be+" —")
		}
	}
	verdict := "identical where complete"
	if msg := r.mismatch(s); msg != "" {
		verdict = "DIFFERENT"
	}
	return strings.Join(counts, ", ") + ": " + verdict
}

// mismatch compares the closed signals of the backends that completed scenario s.
func (r *report) mismatch(s string) string {
	var ref *result
	for _, be := range r.o.backends {
		x, _ := r.get(s, be)
		if !x.completed() {
			continue
		}
		if ref == nil {
			ref = &x
			continue
		}
		if !reflect.DeepEqual(normalized(*ref), normalized(x)) {
			return fmt.Sprintf("%s: %s closed %d signals, %s closed %d, and the lists differ",
				s, ref.Backend, len(ref.Outcome.Closed), x.Backend, len(x.Outcome.Closed))
		}
	}
	return ""
}

// failures are the reasons the benchmark exits non-zero.
func (r *report) failures() []string {
	var out []string
	for _, s := range r.o.scenarios {
		if x, ok := r.get(s, "operator"); ok && !x.completed() {
			out = append(out, fmt.Sprintf("%s: this project's run did not complete: %s%s", s, x.Failure, x.Incomplete))
		}
		if msg := r.mismatch(s); msg != "" {
			out = append(out, msg)
		}
		traded := false
		for _, x := range r.results {
			if x.Scenario == s && x.completed() && len(x.Outcome.Closed) > 0 {
				traded = true
			}
		}
		if !traded {
			out = append(out, s+": no backend closed a signal (the comparison would be empty)")
		}
	}
	return out
}

// normalized is a run's closed signals sorted, with its tag taken out of the ids.
func normalized(x result) []closedSignal {
	out := make([]closedSignal, len(x.Outcome.Closed))
	for i, c := range x.Outcome.Closed {
		c.ID = strings.ReplaceAll(c.ID, x.Tag, "TAG")
		out[i] = c
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].CloseTimestamp != out[j].CloseTimestamp {
			return out[i].CloseTimestamp < out[j].CloseTimestamp
		}
		return out[i].ID < out[j].ID
	})
	return out
}

func (r *report) writeJSON(path string) error {
	b, err := json.MarshalIndent(r.results, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

func row(b *strings.Builder, cells []string) {
	fmt.Fprintf(b, "| %s |\n", strings.Join(cells, " | "))
}

// floorTable puts each scenario's busy seconds in proportion to the raw-driver floor
// of this project's run (floor.go).
func (r *report) floorTable(b *strings.Builder) {
	fmt.Fprintf(b, "\nThe raw-driver floor: as many upserts, one after another, as this project's client sent requests\n"+
		"with writes (floor.go); busy seconds over it:\n\n")
	head := []string{"scenario", "write requests", "floor s"}
	for _, be := range r.o.backends {
		head = append(head, backendLabels[be]+" / floor")
	}
	row(b, head)
	row(b, separator(len(head), 0))
	for _, s := range r.o.scenarios {
		op, ok := r.get(s, "operator")
		if !ok || op.FloorMs <= 0 {
			continue
		}
		cells := []string{r.scenarioTitle(s), fmt.Sprint(op.Outcome.Persistence.WriteRequests), fmt.Sprintf("%.2f", op.FloorMs/1000)}
		for _, be := range r.o.backends {
			x, _ := r.get(s, be)
			if !x.ran() {
				cells = append(cells, "n/a")
				continue
			}
			cells = append(cells, fmt.Sprintf("%.1fx%s", x.Outcome.Persistence.BusyMs/op.FloorMs, mark(x)))
		}
		row(b, cells)
	}
}

// separator is a Markdown table's header separator of n columns, right-aligned but
// for the text columns named.
func separator(n int, text ...int) []string {
	sep := make([]string, n)
	for i := range sep {
		sep[i] = "---:"
	}
	for _, i := range text {
		sep[i] = "---"
	}
	return sep
}
