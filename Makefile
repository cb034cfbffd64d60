# The two commands a newcomer needs: `make demo` and `make test`.
GO      ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: build demo scenario test deps vet fmt-check bench bench-judge bench-composite bench-batch soak

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/deploybot ./cmd/deploybot

# An interactive sandbox: seven hosts, traffic, the bot on this terminal.
demo: build
	./bin/deploybot demo

# The same sandbox, played unattended: a good change goes out, a bad one is
# caught by the canaries and rolled back. Exits non-zero otherwise.
scenario: build
	./bin/deploybot demo --scenario

# Installs what the tests need (Debian packages), then checks formatting,
# vets, and runs every test against the real parts.
test: deps fmt-check vet
	$(GO) test -count=1 -timeout 14m ./...

deps:
	./scripts/install-test-deps.sh

# The model-based test of the pipeline with new seeds until DURATION is up:
# random commands, faults, restarts and crashes, every invariant after every
# step. It prints sequences, steps and checks, or the seed and the shrunk
# sequence of the first failure. Every mode soaks, DURATION each: a
# composite deploy tree (TestModelPipelineComposite), one repository
# (TestModelPipeline), and a fake Gerrit, one project and composite
# (TestModelPipelineGerrit, TestModelPipelineGerritComposite).
DURATION ?= 30m
soak:
	$(GO) test -count=1 -timeout 0 -v -run '^TestModelPipeline(Composite|Gerrit|GerritComposite)?$$' ./cmd/deploybot -model.soak=$(DURATION)

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "not gofmt-formatted:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

# The four figures of README "Hosts over ssh", measured side by side in one
# run against rsync -a --delete and a real sshd on 127.0.0.1, printed as a
# table of medians (DEPLOYBOT_BENCH_RUNS runs each, default 5). The first
# run builds a 50,000-file git repository and caches it in $TMPDIR.
bench: bench-judge bench-composite bench-batch
	$(GO) test -run '^$$' -bench '^BenchmarkFleet$$' -benchtime 1x -timeout 60m ./deployer/hosts

# The canary judge against scap's rule on the same generated traffic: time
# to a failing verdict and false failures, printed as a table, then the
# table of policy x effect (README, "Canary judgement"). Simulated
# seconds, so one run is exact.
bench-judge:
	$(GO) test -run '^$$' -bench '^(BenchmarkCanaryRules|BenchmarkJudgePolicies)$$' -benchtime 1x ./deployer/judge

# A composite deploy tree of 50,000 files (a root repository and one
# release branch with 20 submodules): a one-file change inside a submodule,
# composed and synced, side by side with the same change in a plain tree,
# and the objects composing read (README, "Components").
bench-composite:
	$(GO) test -run '^$$' -bench '^BenchmarkComposite$$' -benchtime 1x -timeout 30m ./deployer/gitrepo

# A backport window of 8 changes, one bad, deployed one at a time and as
# one batch with bisection: wall time, canary-host exposure to the bad
# change, canary windows (README, "Backport windows and batches").
bench-batch:
	$(GO) test -run '^$$' -bench '^BenchmarkBatchWindow$$' -benchtime 1x -timeout 10m ./cmd/deploybot
