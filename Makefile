# vordr — make targets. Versions are pinned in hack/versions.env.
SHELL := /bin/bash
GO ?= go
PREFIX ?= /usr/local
BIN := bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/vordr-project/vordr/version.Version=$(VERSION)
GOBUILD := CGO_ENABLED=0 GOFLAGS=-buildvcs=false $(GO) build -trimpath -ldflags '$(LDFLAGS)'
# The pinned toolchain (containerd, ctr, runc) installed by hack/deps.sh.
VORDR_CACHE ?= /var/cache/vordr
export VORDR_CACHE
TOOLBIN := $(VORDR_CACHE)/bin
# Integration tests take a few minutes; `go test` default timeout is 10 min.
TEST_TIMEOUT ?= 30m

BINARIES := containerd-shim-vordr-v1 vordr vordr-snapshotter vordr-verifier

.PHONY: all deps build test unit integration bench demo install clean generate fmt vet fuzz

all: build

deps: ## install the pinned toolchain (idempotent)
	@bash hack/deps.sh

build: $(addprefix $(BIN)/,$(BINARIES))

$(BIN)/%: FORCE
	@mkdir -p $(BIN)
	$(GOBUILD) -o $@ ./cmd/$*

FORCE:

generate: ## regenerate eBPF objects (needs clang); output is committed
	@if [ -x hack/generate-bpf.sh ]; then bash hack/generate-bpf.sh; else $(GO) generate ./bpf/...; fi

vet:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '_bpfe[lb]\.go$$')); if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi

test: deps build vet ## unit + integration tests (as root)
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...

unit:
	$(GO) test -count=1 $$($(GO) list ./... | grep -v /integration)

integration: deps build
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) -v ./integration/...

bench: deps build ## benchmarks: vordr vs runc.v2 in the same run
	bash bench/run.sh

demo: deps build ## pack, run a container under vordr, show what vordr saw
	bash hack/demo.sh

FUZZTIME ?= 2m
fuzz: ## longer fuzzing of the bundle reader and the policy parser (seed corpora run in `make test`)
	$(GO) test -run XXX -fuzz FuzzOpen -fuzztime $(FUZZTIME) ./ctp/
	$(GO) test -run XXX -fuzz FuzzParse -fuzztime $(FUZZTIME) ./ctp/policy/

install: build
	install -m 0755 $(addprefix $(BIN)/,$(BINARIES)) $(PREFIX)/bin/
	@if [ "$(INSTALL_TOOLCHAIN)" = 1 ]; then install -m 0755 $(TOOLBIN)/containerd $(TOOLBIN)/ctr $(TOOLBIN)/containerd-shim-runc-v2 $(TOOLBIN)/runc $(PREFIX)/bin/; fi

clean:
	rm -rf $(BIN)
