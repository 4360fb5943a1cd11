package controllers

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/backtestpersistence/operator/internal/persist"
)

// spec.adapters accepts exactly the kinds of the table, and as many of them.
func TestCRDAdaptersAreTheKindsTable(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "config", "crd", "bases", "persistence.backtestkit.dev_backtestpersistences.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	type schema struct {
		Properties map[string]schema `json:"properties"`
		Items      *schema           `json:"items"`
		Enum       []string          `json:"enum"`
		MaxItems   *int              `json:"maxItems"`
	}
	var crd struct {
		Spec struct {
			Versions []struct {
				Schema struct {
					OpenAPIV3Schema schema `json:"openAPIV3Schema"`
				} `json:"schema"`
			} `json:"versions"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(raw, &crd); err != nil || len(crd.Spec.Versions) == 0 {
		t.Fatalf("CRD: %v", err)
	}
	adapters := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"].Properties["adapters"]
	want := make([]string, len(persist.Kinds))
	for i := range persist.Kinds {
		want[i] = string(persist.Kinds[i].Kind)
	}
	if adapters.Items == nil || !slices.Equal(adapters.Items.Enum, want) {
		t.Fatalf("spec.adapters enum %v, want the table's kinds %v", adapters.Items, want)
	}
	if adapters.MaxItems == nil || *adapters.MaxItems != len(want) {
		t.Fatalf("spec.adapters maxItems %v, want %d", adapters.MaxItems, len(want))
	}
}
