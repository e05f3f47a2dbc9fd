# The two commands of the README: `make run` and `make test`. Everything else is a step of
# those. Tools are built once into $(APPROVAL_CACHE) (outside the repository) and reused.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

CARGO ?= cargo
SCRIPTS := e2e/scripts
APPROVAL_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/tekton-approval
export APPROVAL_CACHE

# `make run` and cluster-up keep one long-lived cluster; the e2e suite gets a fresh one of
# its own, on other ports, so the two never meet.
RUN_STATE := $(APPROVAL_CACHE)/cluster
E2E_STATE := $(APPROVAL_CACHE)/e2e-cluster
E2E_PORTS := ETCD_PORT=24790 ETCD_PEER_PORT=24800 APISERVER_PORT=17443 WEBHOOK_PORT=19443 \
	CONTROLLER_PROBE_PORT=19080 WEBHOOK_PROBE_PORT=19081 TEKTON_PROBES_PORT=19090 \
	TEKTON_PROFILING_PORT=19091 TEKTON_METRICS_PORT=19092 NODE_NET=1

.PHONY: help
help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

.PHONY: build
build: ## build the binaries (debug)
	$(CARGO) build --locked --bins

.PHONY: image
image: build ## our image, without a container engine: target/image/approval-controller.tar (docker load -i / ctr images import)
	$(CARGO) run --locked --quiet -p approval-e2e --bin image -- controller

.PHONY: run
run: build ## local control plane with a node, our controller, a build -> approve -> deploy pipeline waiting at its gate; follows its log
	APPROVAL_STATE=$(RUN_STATE) $(SCRIPTS)/cluster-up.sh >/dev/null
	APPROVAL_STATE=$(RUN_STATE) $(SCRIPTS)/approval.sh restart
	APPROVAL_STATE=$(RUN_STATE) $(SCRIPTS)/demo.sh
	tail -n 0 -F $(RUN_STATE)/logs/demo.log $(RUN_STATE)/logs/approval-controller.log

.PHONY: test
test: lint unit e2e ## unit tests, then the end-to-end suite on a real control plane

.PHONY: unit
unit: ## unit tests (pure core, tower-test API scenarios, webhook HTTP layer)
	@mkdir -p target
	$(CARGO) test --locked --workspace --exclude approval-e2e 2>&1 | tee target/unit-tests.log
	@$(SCRIPTS)/count-tests.sh "unit tests" target/unit-tests.log

.PHONY: e2e
e2e: build ## the end-to-end suite on a fresh local control plane
	$(E2E_PORTS) APPROVAL_STATE=$(E2E_STATE) $(SCRIPTS)/e2e.sh

.PHONY: chaos
chaos: build ## the chaos scenario alone, long: 300 gates (make test runs it with 40)
	CHAOS_GATES=$${CHAOS_GATES:-300} E2E_TEST=chaos $(E2E_PORTS) APPROVAL_STATE=$(E2E_STATE) $(SCRIPTS)/e2e.sh

.PHONY: bench
bench: ## benchmarks vs manual-approval-gate, 3 alternating runs, fresh control planes -> BENCHMARKS.md, bench/ (about 2 hours; not in test)
	$(SCRIPTS)/bench.sh

.PHONY: bench-large
bench-large: ## make bench with the memory steps beyond N up to 100,000 waiting gates (longer still)
	BENCH_BEYOND=30000,100000 $(SCRIPTS)/bench.sh

.PHONY: cluster-up
cluster-up: build ## start (or keep) the local control plane and our controller
	APPROVAL_STATE=$(RUN_STATE) $(SCRIPTS)/cluster-up.sh
	APPROVAL_STATE=$(RUN_STATE) $(SCRIPTS)/approval.sh restart

.PHONY: cluster-down
cluster-down: ## stop the local control plane (logs kept; PURGE=1 removes all state)
	APPROVAL_STATE=$(RUN_STATE) $(SCRIPTS)/cluster-down.sh $(if $(PURGE),--purge)

.PHONY: tools
tools: ## build the pinned control-plane tools into the cache
	$(SCRIPTS)/build-tools.sh

.PHONY: lint
lint: ## rustfmt and clippy, warnings are errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings

.PHONY: crd
crd: ## regenerate config/300-crd.yaml from src/api/approval.rs (a unit test checks it)
	$(CARGO) run --quiet --bin approval-controller -- crd > config/300-crd.yaml

.PHONY: fmt
fmt: ## format the code
	$(CARGO) fmt --all

.PHONY: deploy
deploy: ## install config/ into the cluster of the current kubeconfig
	kubectl apply -k config/
