#!/usr/bin/env bash
# Runs the backtest-kit client's tests with node's test runner. The tests against
# a real gateway run when BACKTEST_PERSISTENCE_TEST_URL (and _NAMESPACE, _NAME,
# _TOKEN or _TOKEN_FILE) are set, and are skipped with a message otherwise; the
# whole-system suite (test/e2e) runs them against the operator it starts.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
"${ROOT}/hack/client-deps.sh"
cd "${ROOT}/clients/backtest-kit"
exec node --test test/*.test.js
