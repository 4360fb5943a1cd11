package loadgen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
)

// Main runs the load client of a re-executed binary: a Config as JSON on stdin, the
// Result as JSON on stdout. It returns the exit code.
func Main() int {
	var cfg Config
	if err := json.NewDecoder(os.Stdin).Decode(&cfg); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen: read config:", err)
		return 2
	}
	res, err := Run(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen: write result:", err)
		return 1
	}
	return 0
}

// RunProcess runs cfg in a new process of the current binary, which must call Main
// when EnvVar is set (a test binary does so from TestMain).
func RunProcess(cfg Config) (res Result, err error) {
	in, err := json.Marshal(cfg)
	if err != nil {
		return Result{}, err
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), EnvVar+"=1")
	cmd.Stdin = bytes.NewReader(in)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return Result{}, fmt.Errorf("load client: %w: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		return Result{}, fmt.Errorf("load client output %q: %w", out.String(), err)
	}
	return res, nil
}
