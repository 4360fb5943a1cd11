# backtest-persistence-operator

IMG ?= backtest-persistence-operator:dev
BIN := $(CURDIR)/bin
CONTROLLER_GEN := $(BIN)/controller-gen
HELM := $(BIN)/helm
KUBECTL := $(BIN)/kubectl
export KUBEBUILDER_ASSETS := $(BIN)
export PATH := $(BIN):$(PATH)

# Test flags: GINKGO_FLAGS go to every Ginkgo suite; TEST_P bounds parallel packages on small machines.
GO_TEST_FLAGS ?= -count=1 -timeout=40m
TEST_P ?= 1

.DEFAULT_GOAL := help

##@ General

.PHONY: help
help: ## Show the targets.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: tools ## Generate the CRD and RBAC manifests from the API markers.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd paths="./api/..." paths="./controllers/..." paths="./internal/..." output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac
	@hack/sync-chart-crds.sh

.PHONY: generate
generate: tools ## Generate deepcopy code.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: fmt
fmt: ## Run go fmt.
	go fmt ./...

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

.PHONY: tools
tools: ## Build controller-gen, helm and FerretDB, install redis-server and (when possible) PostgreSQL 15 (cached in bin/).
	@hack/tools.sh

.PHONY: envtest
envtest: ## Build kube-apiserver, etcd and kubectl for the tests (cached in bin/; minutes on a cold cache).
	@hack/envtest.sh

.PHONY: setup
setup: tools envtest ## Everything the tests and the local stack need.
	@hack/client-deps.sh

# Fuzz targets run for FUZZ_TIME each by `make test` (and `make fuzz`); the seed corpora run in every `go test`.
FUZZ_TIME ?= 8s
FUZZ_TARGETS := ./internal/gateway:FuzzDecodeOp ./internal/gateway:FuzzDecodeBatch \
	./internal/persist:FuzzListItems ./internal/persist:FuzzCodecRoundTrip

.PHONY: test
test: setup ## Run all tests: unit, integration (envtest, FerretDB, redis-server), install paths, client, end-to-end and a bounded fuzz run.
	go test $(GO_TEST_FLAGS) -p $(TEST_P) ./...
	@hack/client-test.sh
	@$(MAKE) --no-print-directory fuzz

.PHONY: fuzz
fuzz: ## Run each fuzz target of the decoders and scanners for FUZZ_TIME (default 8s).
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$name ($$pkg, $(FUZZ_TIME))"; \
		go test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZ_TIME) $$pkg || exit 1; \
	done

.PHONY: bench
bench: setup ## Run the benchmarks of the store and the gateway.
	go test -run '^$$' -bench . -benchmem -count=1 -timeout=30m ./internal/...

# BENCH_BACKTEST_KIT_FLAGS: e.g. -defaults-days 0.1 -full-days 0.1 -paper-minutes 20 for a quick run.
BENCH_BACKTEST_KIT_FLAGS ?=

.PHONY: bench-backtest-kit
bench-backtest-kit: setup ## Real backtest-kit on its file adapters, @backtest-kit/mongo and this project: busy seconds, ratios, closed signals.
	go run ./test/bench/backtest-kit $(BENCH_BACKTEST_KIT_FLAGS)

##@ Build

.PHONY: build
build: ## Build the manager binary.
	CGO_ENABLED=0 go build -trimpath -o $(BIN)/manager ./cmd

.PHONY: run
run: setup build ## Run the operator with a local control plane, FerretDB and redis-server (when no cluster is given).
	go run ./hack/localstack

.PHONY: docker-build
docker-build: ## Build the container image (needs a container engine).
	docker build -t $(IMG) .

##@ Deployment

.PHONY: install
install: manifests ## Install the CRDs into the cluster of the current kubeconfig.
	$(KUBECTL) apply --server-side -f config/crd/bases

.PHONY: uninstall
uninstall: manifests ## Remove the CRDs (and with them every BacktestPersistence) from the cluster.
	$(KUBECTL) delete --ignore-not-found -f config/crd/bases

.PHONY: deploy
deploy: manifests ## Deploy the operator to the cluster of the current kubeconfig.
	$(KUBECTL) apply --server-side -k config/default

.PHONY: undeploy
undeploy: ## Remove the operator from the cluster.
	$(KUBECTL) delete --ignore-not-found -k config/default
