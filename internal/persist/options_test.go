package persist

import (
	"os"
	"strings"
	"testing"
	"time"
)

// An empty cache TTL means DefaultCacheTTL (24h), and the CRD says so: every cached
// entry expires, which the coherence protocol (docs/store.md) relies on.
func TestCacheTTLDefault(t *testing.T) {
	if DefaultCacheTTL != 24*time.Hour {
		t.Fatalf("DefaultCacheTTL = %v; the CRD and docs/store.md say 24h", DefaultCacheTTL)
	}
	for _, ttl := range []time.Duration{0, -time.Second} {
		if got := (Options{CacheTTL: ttl}).withDefaults().CacheTTL; got != DefaultCacheTTL {
			t.Fatalf("CacheTTL %v becomes %v, want %v", ttl, got, DefaultCacheTTL)
		}
	}
	for _, path := range []string{
		"../../config/crd/bases/persistence.backtestkit.dev_backtestpersistences.yaml",
		"../../charts/backtest-persistence-operator/files/crds/persistence.backtestkit.dev_backtestpersistences.yaml",
	} {
		crd, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		_, ttl, ok := strings.Cut(string(crd), "\n                  ttl:\n")
		if !ok {
			t.Fatalf("%s: no cache ttl field", path)
		}
		desc, _, _ := strings.Cut(ttl, "type: string")
		if desc = strings.Join(strings.Fields(desc), " "); !strings.Contains(desc, "Empty: 24h, the store's default") {
			t.Fatalf("%s: ttl description %q does not state the store's default (24h)", path, desc)
		}
	}
}
