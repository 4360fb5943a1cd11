package install_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// toolTimeout bounds one run of helm or kubectl.
const toolTimeout = 2 * time.Minute

// run executes a tool and returns its standard output; the error carries standard error.
func run(ctx context.Context, bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, toolTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w\n%s", bin, strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// helmTemplate renders the chart as release "btp" in the release namespace with the given
// extra helm arguments (--set, -f).
func helmTemplate(ctx context.Context, args ...string) (string, error) {
	base := []string{"template", "btp", chartDir(), "--namespace", releaseNamespace}
	return run(ctx, helmBin, append(base, args...)...)
}

// helmLint lints the chart strictly with the given extra helm arguments.
func helmLint(ctx context.Context, args ...string) (string, error) {
	base := []string{"lint", chartDir(), "--strict", "--namespace", releaseNamespace}
	return run(ctx, helmBin, append(base, args...)...)
}

// kustomize builds a kustomization directory with kubectl's built-in kustomize.
func kustomize(ctx context.Context, dir string) (string, error) {
	return run(ctx, kubectl, "kustomize", dir)
}

// decode splits a multi-document YAML stream into objects, skipping empty documents.
func decode(manifests string) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(manifests), 4096)
	var objs []*unstructured.Unstructured
	for {
		u := &unstructured.Unstructured{}
		err := dec.Decode(&u.Object)
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("decode manifests: %w", err)
		}
		if len(u.Object) == 0 {
			continue
		}
		objs = append(objs, u)
	}
}

// describe names an object for messages: Kind namespace/name.
func describe(u *unstructured.Unstructured) string {
	if ns := u.GetNamespace(); ns != "" {
		return fmt.Sprintf("%s %s/%s", u.GetKind(), ns, u.GetName())
	}
	return fmt.Sprintf("%s %s", u.GetKind(), u.GetName())
}

// dryRunApply server-side applies every object with dryRun=All (apply is always strict
// about unknown fields) and returns one error naming every rejected object.
func dryRunApply(ctx context.Context, objs []*unstructured.Unstructured) error {
	var errs []error
	for _, u := range objs {
		reqCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := k8sClient.Apply(reqCtx, client.ApplyConfigurationFromUnstructured(u.DeepCopy()),
			client.DryRunAll, client.FieldOwner("install-test"), client.ForceOwnership)
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", describe(u), err))
		}
	}
	return errors.Join(errs...)
}

// ofKind returns the objects of a kind.
func ofKind(objs []*unstructured.Unstructured, kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, u := range objs {
		if u.GetKind() == kind {
			out = append(out, u)
		}
	}
	return out
}

// kinds counts the objects of each kind, for messages and assertions.
func kinds(objs []*unstructured.Unstructured) map[string]int {
	out := map[string]int{}
	for _, u := range objs {
		out[u.GetKind()]++
	}
	return out
}
