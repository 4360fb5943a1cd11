package persist

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// The largest lists backtest-kit keeps (1,000 log entries with arbitrary args, 500
// notifications) do not fit one request's payload limit at 5 KB and 20 KB an item;
// written as several list writes of parts under the limit, as the npm client sends
// them, the store holds the whole list and reads it back (cache on and off).
func TestListsOfTheFrameworksLargestSizes(t *testing.T) {
	for _, cacheOn := range []bool{true, false} {
		t.Run(fmt.Sprintf("cache=%v", cacheOn), func(t *testing.T) {
			f := newFixture(t, storeConfig{cache: cacheOn})
			logs := make([]map[string]any, 1000)
			for i := range logs {
				logs[i] = fxLogEntry(fmt.Sprintf("big-%d", i), int64(i))
				logs[i]["args"] = []any{strings.Repeat("l", 5000), i}
			}
			notes := make([]map[string]any, 500)
			for i := range notes {
				notes[i] = fxNotification(fmt.Sprintf("note-%d", i), false)
				notes[i]["createdAt"] = 1767225600000 + i
				notes[i]["text"] = strings.Repeat("n", 20000)
			}
			for _, l := range []struct {
				kind  Kind
				key   map[string]any
				items []map[string]any
			}{{KindLog, nil, logs}, {KindNotification, keyOf("backtest", true), notes}} {
				whole := mustJSON(l.items)
				if len(whole) <= DefaultMaxPayloadBytes {
					t.Fatalf("%s list is %d bytes, not over the payload limit", l.kind, len(whole))
				}
				if err := f.doErr(Request{Kind: l.kind, Op: OpWrite, Key: l.key, Value: whole}); !errors.Is(err, ErrTooLarge) {
					t.Fatalf("%s list of %d bytes in one write: %v, want ErrTooLarge", l.kind, len(whole), err)
				}
				assertJSON(t, string(l.kind)+" after the refused write", f.do(Request{Kind: l.kind, Op: OpRead, Key: l.key}).Value, `[]`)
				// parts of about 1 MiB, as the client sends them
				per := len(l.items) * (1 << 20) / len(whole)
				for start := 0; start < len(l.items); start += per {
					f.do(Request{Kind: l.kind, Op: OpWrite, Key: l.key, Value: mustJSON(l.items[start:min(start+per, len(l.items))])})
				}
				got := listByID(t, f.do(Request{Kind: l.kind, Op: OpRead, Key: l.key}).Value)
				if len(got) != len(l.items) {
					t.Fatalf("%s read %d items, want %d", l.kind, len(got), len(l.items))
				}
				for _, it := range l.items {
					if !jsonEqual(mustJSON(got[it["id"].(string)]), mustJSON(it)) {
						t.Fatalf("%s item %v did not round-trip", l.kind, it["id"])
					}
				}
				// the whole list resent unchanged, in parts, changes nothing
				c := f.counted(func() {
					for start := 0; start < len(l.items); start += per {
						f.do(Request{Kind: l.kind, Op: OpWrite, Key: l.key, Value: mustJSON(l.items[start:min(start+per, len(l.items))])})
					}
				})
				if n := c.MongoByCmd["insert"] + c.MongoByCmd["update"]; n != 0 {
					t.Fatalf("%s unchanged resend wrote %d times", l.kind, n)
				}
			}
		})
	}
}
