package gateway

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/backtestpersistence/operator/internal/persist"

	"sigs.k8s.io/yaml"
)

// The served document is the one in docs/, and it describes every route and code.
func TestOpenAPIDocument(t *testing.T) {
	docs, err := os.ReadFile(filepath.Join("..", "..", "docs", "openapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if string(docs) != string(OpenAPI) {
		t.Fatal("docs/openapi.yaml and internal/gateway/openapi.yaml differ: copy one over the other")
	}
	var doc struct {
		OpenAPI    string                    `json:"openapi"`
		Paths      map[string]map[string]any `json:"paths"`
		Components struct {
			Schemas map[string]struct {
				Properties map[string]any `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := yaml.Unmarshal(OpenAPI, &doc); err != nil {
		t.Fatalf("openapi.yaml is not valid YAML: %v", err)
	}
	if doc.OpenAPI == "" || doc.OpenAPI[0] != '3' {
		t.Fatalf("not an OpenAPI 3 document: %q", doc.OpenAPI)
	}
	for _, p := range []string{
		"/v1/namespaces/{namespace}/persistences/{name}/ops",
		"/v1/namespaces/{namespace}/persistences/{name}/batch",
		"/v1/openapi.yaml", "/healthz", "/readyz",
	} {
		if _, ok := doc.Paths[p]; !ok {
			t.Errorf("route %s is not documented", p)
		}
	}
	// The Kind enum is the table of kinds, and the Key description names each kind.
	var kinds struct {
		Components struct {
			Schemas struct {
				Kind struct {
					Enum []string `json:"enum"`
				} `json:"Kind"`
				Key struct {
					Description string `json:"description"`
				} `json:"Key"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := yaml.Unmarshal(OpenAPI, &kinds); err != nil {
		t.Fatal(err)
	}
	enum := kinds.Components.Schemas.Kind.Enum
	if len(enum) != len(persist.Kinds) {
		t.Errorf("Kind enum %v, want the %d kinds of the table", enum, len(persist.Kinds))
	}
	for i := range persist.Kinds {
		k := string(persist.Kinds[i].Kind)
		if i < len(enum) && enum[i] != k {
			t.Errorf("Kind enum[%d] = %s, want %s", i, enum[i], k)
		}
		if !strings.Contains(kinds.Components.Schemas.Key.Description, k) {
			t.Errorf("Key description does not name %s", k)
		}
	}
	// A candle write's result is documented with the fields a read returns.
	var ops struct {
		Paths map[string]struct {
			Post struct {
				Responses map[string]struct {
					Content map[string]struct {
						Examples map[string]struct {
							Value struct {
								Value json.RawMessage `json:"value"`
							} `json:"value"`
						} `json:"examples"`
					} `json:"content"`
				} `json:"responses"`
			} `json:"post"`
		} `json:"paths"`
	}
	if err := yaml.Unmarshal(OpenAPI, &ops); err != nil {
		t.Fatal(err)
	}
	ex := ops.Paths["/v1/namespaces/{namespace}/persistences/{name}/ops"].Post.Responses["200"].Content["application/json"].Examples["candleWrite"]
	var written []map[string]any
	if err := json.Unmarshal(ex.Value.Value, &written); err != nil || len(written) == 0 {
		t.Errorf("the ops response has no candleWrite example with an array value: %v", err)
	}
	for _, c := range written {
		for _, f := range []string{"timestamp", "open", "high", "low", "close", "volume"} {
			if _, ok := c[f]; !ok || len(c) != 6 {
				t.Errorf("candleWrite example candle %v: want exactly timestamp, open, high, low, close, volume", c)
			}
		}
	}
	// Every field the decoder accepts is documented.
	for _, f := range []string{"kind", "op", "key", "value", "when", "limit", "since", "until"} {
		if _, ok := doc.Components.Schemas["Request"].Properties[f]; !ok {
			t.Errorf("Request field %q is not documented", f)
		}
	}
}
