package gateway

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestDecisionCache(t *testing.T) {
	c := newDecisionCache[int](3)
	now := time.Unix(1000, 0)
	c.now = func() time.Time { return now }
	calls := 0
	fill := func(v int, ttl time.Duration) func() (int, time.Duration, error) {
		return func() (int, time.Duration, error) { calls++; return v, ttl, nil }
	}
	if v, _ := c.get("a", fill(1, time.Second)); v != 1 || calls != 1 {
		t.Fatalf("miss: %d %d", v, calls)
	}
	if v, _ := c.get("a", fill(2, time.Second)); v != 1 || calls != 1 {
		t.Fatalf("hit: %d %d", v, calls)
	}
	now = now.Add(time.Second)
	if v, _ := c.get("a", fill(3, time.Second)); v != 3 || calls != 2 {
		t.Fatalf("expired: %d %d", v, calls)
	}
	if _, err := c.get("e", func() (int, time.Duration, error) { return 0, time.Hour, errors.New("x") }); err == nil {
		t.Fatal("error not returned")
	}
	if v, _ := c.get("e", fill(4, 0)); v != 4 {
		t.Fatalf("error was cached: %d", v)
	}
	if v, _ := c.get("e", fill(5, 0)); v != 5 {
		t.Fatalf("ttl 0 was cached: %d", v)
	}
	for i := 0; i < 10; i++ {
		_, _ = c.get(fmt.Sprint(i), fill(i, time.Hour))
	}
	if n := c.len(); n > 3 {
		t.Fatalf("cache holds %d entries, bound is 3", n)
	}
}
