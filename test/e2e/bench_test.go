package e2e_test

import (
	"os"
	"os/exec"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/backtestpersistence/operator/internal/testenv"
)

// A short run of the real-client benchmark (test/bench/backtest-kit, make
// bench-backtest-kit) on this suite's servers and operator: its harness, the
// @backtest-kit/mongo install and the closed-signal check keep working.
var _ = Describe("the real-client benchmark", func() {
	It("runs a short default backtest on the file adapters, @backtest-kit/mongo and the operator, with the same closed signals", func(ctx SpecContext) {
		// @backtest-kit/mongo uses (and the benchmark flushes) database 0 of its Redis: its own server, not the tenant's.
		redis, err := testenv.StartRedis()
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(redis.Close)
		cmd := exec.CommandContext(ctx, "go", "run", "./test/bench/backtest-kit", "-scenarios", "defaults", "-defaults-days", "0.1")
		cmd.Dir = testenv.RepoRoot()
		cmd.Env = append(os.Environ(),
			"MONGODB_URI="+mongoURI,
			"REDIS_URL="+redis.URL(),
			"BACKTEST_PERSISTENCE_URL="+gatewayURL,
			"BACKTEST_PERSISTENCE_NAMESPACE="+tenantNamespace,
			"BACKTEST_PERSISTENCE_NAME="+tenantName,
			"BACKTEST_PERSISTENCE_TOKEN="+token)
		out, err := cmd.CombinedOutput()
		GinkgoWriter.Printf("%s", out)
		Expect(err).NotTo(HaveOccurred(), "the benchmark failed:\n%s", tail(string(out), 6000))
		Expect(string(out)).To(MatchRegexp(`file \d+, mongo \d+, operator \d+: identical where complete`), "all three completed and agree:\n%s", out)
	}, SpecTimeout(5*time.Minute))
})
