package history

import (
	"context"
	"fmt"
	"testing"
)

// Verify runs w under schedule, checks the history and fails t on any violation. It
// returns the schedule's line of a report table: name, operations and violations.
func Verify(ctx context.Context, t testing.TB, name string, w Workload, schedule func(ctx context.Context) error) string {
	t.Helper()
	ops, err := Run(ctx, w, schedule)
	if err != nil {
		t.Fatalf("fault schedule: %v", err)
	}
	res, err := Check(ops)
	if err != nil {
		t.Fatal(err)
	}
	line := fmt.Sprintf("%-40s %s", name, res.Summary())
	t.Log(line)
	if !res.OK() {
		t.Errorf("%d violations; first ones:\n%s", len(res.Violations), res.Sample(10))
	}
	return line
}
