# ferry — see README.md. `make demo` and `make test` are the two commands.
GO      ?= go
BIN     := bin/ferry
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
# ./... skips testdata/, so its packages are named one by one.
PKGS    := ./... $(shell find testdata -path testdata/tools -prune -o -name '*.go' -exec dirname {} \; | sort -u | sed 's|^|./|')
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# A count, not a duration: go1.26's fuzz coordinator can fail a target with
# "context deadline exceeded", and no failing input, when a -fuzztime
# duration ends mid-run (reported as golang/go#75804, fixed in go1.27); a
# count has no deadline to race. About 15 s in all.
FUZZTIME ?= 20000x

# Real clients the tests check ferry's work with, pinned, built once per
# machine with go install into a cache outside the clone (cosign takes a few
# minutes to build), and named by version so a new pin builds anew.
TOOLS          ?= $(HOME)/.cache/ferry-tools
COSIGN_VERSION := v2.6.5
COSIGN         := $(TOOLS)/cosign-$(COSIGN_VERSION)/cosign
ORAS_TOOL      := $(TOOLS)/oras-v1.3.6/oras
HELM_VERSION   := v3.22.0
HELM           := $(TOOLS)/helm-$(HELM_VERSION)/helm
export FERRY_COSIGN := $(COSIGN)
export FERRY_ORAS   := $(ORAS_TOOL)
export FERRY_HELM   := $(HELM)

# Peers for the benchmark, pinned, installed with go install into a cache.
BENCH_BIN      := $(CURDIR)/.cache/bench/bin
CRANE_VERSION  := v0.22.1
REGCTL_VERSION := v0.11.7
ORAS_VERSION   := v1.3.6
BENCH_FLAGS    ?=

.PHONY: all build demo test unit lint deps fuzz bench bench-deps registry-tool test-tools clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/ferry

# Debian's docker-registry (distribution 2.8, the generation Harbor runs) and
# skopeo (the peer that must read our bundles). CNCF distribution v3 comes
# from the tool directive of testdata/tools/go.mod (a module of its own, so
# that its requirements stay out of ferry's go.mod) and needs no install.
deps:
	@if ! command -v docker-registry >/dev/null || ! command -v skopeo >/dev/null; then \
		echo "installing Debian packages docker-registry and skopeo"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends docker-registry skopeo >/dev/null; \
	fi

# DEMO_PORTS=5000,5001 pins the two registries' ports on 127.0.0.1.
demo: deps build registry-tool test-tools
	@echo "demo: building the demo driver"
	$(GO) run ./testdata/demo -ferry $(BIN) -cosign $(COSIGN)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	GOOS=darwin $(GO) vet $(PKGS)

# CNCF distribution v3, the tool pinned in testdata/tools/go.mod: build it
# once, up front, rather than in the middle of the first test that starts a
# registry. The first build downloads and compiles for a few minutes.
registry-tool:
	@echo "registry: building the pinned CNCF distribution v3 (a few minutes the first time, then cached)"
	@$(GO) -C testdata/tools tool -n registry >/dev/null

# cosign, oras and helm, which the tests check signatures, referrers and
# charts with.
test-tools: $(COSIGN) $(ORAS_TOOL) $(HELM)

$(HELM):
	@echo "test tools: building helm $(HELM_VERSION) (a few minutes the first time on a machine, then cached in $(TOOLS))"
	@GOBIN=$(dir $@) $(GO) install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)

$(COSIGN):
	@echo "test tools: building cosign $(COSIGN_VERSION) (several minutes the first time on a machine, then cached in $(TOOLS))"
	@GOBIN=$(dir $@) $(GO) install github.com/sigstore/cosign/v2/cmd/cosign@$(COSIGN_VERSION)

$(ORAS_TOOL):
	@echo "test tools: building oras v1.3.6 (cached in $(TOOLS))"
	@GOBIN=$(dir $@) $(GO) install oras.land/oras/cmd/oras@v1.3.6

# The whole suite with the race detector, then a short run of every fuzz
# target. Tests that share nothing run in parallel: most of their time is
# spent waiting on registries, so 4 at a time on 2 cores.
test: deps lint registry-tool test-tools
	$(GO) test -race -count=1 -parallel 4 -timeout 8m $(PKGS)
	@$(MAKE) --no-print-directory fuzz FUZZTIME=$(FUZZTIME)

# Every fuzz target for FUZZTIME each (make fuzz FUZZTIME=5m for a long run;
# a duration may hit the deadline bug above, with no failing input written).
fuzz:
	@for pkg in $$($(GO) list $(PKGS)); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "fuzz $$pkg $$f"; \
			$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg >/tmp/ferry-fuzz.log 2>&1 || { cat /tmp/ferry-fuzz.log; exit 1; }; \
		done; \
	done

# ferry side by side with skopeo, crane, regctl and oras on a generated
# corpus (make bench BENCH_FLAGS="-scale 300000000 -rounds 1" for a quick one).
bench: deps build bench-deps
	$(GO) run ./testdata/bench -ferry $(BIN) -peers $(BENCH_BIN) $(BENCH_FLAGS)

bench-deps:
	@mkdir -p $(BENCH_BIN)
	@[ -x $(BENCH_BIN)/crane ]  || GOBIN=$(BENCH_BIN) $(GO) install github.com/google/go-containerregistry/cmd/crane@$(CRANE_VERSION)
	@[ -x $(BENCH_BIN)/regctl ] || GOBIN=$(BENCH_BIN) $(GO) install github.com/regclient/regclient/cmd/regctl@$(REGCTL_VERSION)
	@[ -x $(BENCH_BIN)/regsync ] || GOBIN=$(BENCH_BIN) $(GO) install github.com/regclient/regclient/cmd/regsync@$(REGCTL_VERSION)
	@[ -x $(BENCH_BIN)/oras ]   || GOBIN=$(BENCH_BIN) $(GO) install oras.land/oras/cmd/oras@$(ORAS_VERSION)

clean:
	rm -rf bin .cache
