# vordr — make targets. Versions are pinned in hack/versions.env.
SHELL := /bin/bash
GO ?= go
PREFIX ?= /usr/local
BIN := bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/vordr-project/vordr/version.Version=$(VERSION)
# grpcnotrace: grpc without golang.org/x/net/trace, whose html/template makes
# the linker keep every exported method (reflect's MethodByName): the shim is
# 3.6 MB smaller, which is resident memory and start-up time of every shim
# (docs/monitoring.md, "Shim memory").
GOTAGS ?= grpcnotrace
GOBUILD := CGO_ENABLED=0 GOFLAGS=-buildvcs=false $(GO) build -tags '$(GOTAGS)' -trimpath -ldflags '$(LDFLAGS)'
# The pinned toolchain (containerd, ctr, runc) installed by hack/deps.sh.
VORDR_CACHE ?= /var/cache/vordr
export VORDR_CACHE
TOOLBIN := $(VORDR_CACHE)/bin
# Integration tests take a few minutes; `go test` default timeout is 10 min.
TEST_TIMEOUT ?= 30m

BINARIES := containerd-shim-vordr-v1 vordr vordr-snapshotter vordr-verifier

.PHONY: all deps build test unit integration bench demo install uninstall clean generate fmt vet fuzz cosign-crosscheck xcheck-mldsa

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

cosign-crosscheck: build ## optional: the real cosign (built from the module proxy, cached) and vordr verify each other's sigstore bundles
	bash hack/cosign-crosscheck.sh

FUZZTIME ?= 2m
fuzz: ## longer fuzzing of the bundle reader and the policy parser (seed corpora run in `make test`)
	$(GO) test -run XXX -fuzz FuzzOpen -fuzztime $(FUZZTIME) ./ctp/
	$(GO) test -run XXX -fuzz FuzzParse -fuzztime $(FUZZTIME) ./ctp/policy/

xcheck-mldsa: ## ML-DSA signatures exchanged with the Go standard library's own implementation, both ways
	@bash hack/mldsa-stdlib-xcheck.sh

# Installation layout; DESTDIR stages a tree for packaging (nothing is written
# outside it). Existing configs under $(SYSCONFDIR)/vordr are never replaced.
DESTDIR ?=
BINDIR ?= $(PREFIX)/bin
LIBEXECDIR ?= $(PREFIX)/libexec
DATADIR ?= $(PREFIX)/share
MANDIR ?= $(DATADIR)/man
SYSCONFDIR ?= /etc
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
VERIFIERDIR := $(LIBEXECDIR)/vordr/image-verifier
CONFIGS := runtime.toml verifier.toml serve.toml policies/strict.toml policies/permissive.toml

install: build ## install binaries, systemd unit, sample configs, completions, man page (PREFIX, DESTDIR)
	install -d -m 0755 $(DESTDIR)$(BINDIR) $(DESTDIR)$(VERIFIERDIR) $(DESTDIR)$(SYSTEMDUNITDIR) \
		$(DESTDIR)$(DATADIR)/bash-completion/completions $(DESTDIR)$(DATADIR)/zsh/site-functions \
		$(DESTDIR)$(DATADIR)/fish/vendor_completions.d $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(DATADIR)/doc/vordr
	install -d -m 0755 $(DESTDIR)$(SYSCONFDIR)/vordr $(DESTDIR)$(SYSCONFDIR)/vordr/policies $(DESTDIR)$(SYSCONFDIR)/vordr/keys
	install -m 0755 $(BIN)/containerd-shim-vordr-v1 $(BIN)/vordr $(BIN)/vordr-snapshotter $(DESTDIR)$(BINDIR)/
	install -m 0755 $(BIN)/vordr-verifier $(DESTDIR)$(VERIFIERDIR)/
	@for u in vordr-snapshotter vordr-metrics vordr-serve; do \
		sed 's|@BINDIR@|$(BINDIR)|g' packaging/systemd/$$u.service >$(DESTDIR)$(SYSTEMDUNITDIR)/$$u.service; \
		chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/$$u.service; \
	done
	@for f in $(CONFIGS); do \
		if [ -e $(DESTDIR)$(SYSCONFDIR)/vordr/$$f ]; then echo "keeping $(DESTDIR)$(SYSCONFDIR)/vordr/$$f"; \
		else install -m 0644 packaging/etc/vordr/$$f $(DESTDIR)$(SYSCONFDIR)/vordr/$$f; fi; \
	done
	$(BIN)/vordr completion bash >$(DESTDIR)$(DATADIR)/bash-completion/completions/vordr
	$(BIN)/vordr completion zsh >$(DESTDIR)$(DATADIR)/zsh/site-functions/_vordr
	$(BIN)/vordr completion fish >$(DESTDIR)$(DATADIR)/fish/vendor_completions.d/vordr.fish
	$(BIN)/vordr man >$(DESTDIR)$(MANDIR)/man1/vordr.1
	install -m 0644 README.md docs/*.md $(DESTDIR)$(DATADIR)/doc/vordr/
	@if [ "$(INSTALL_TOOLCHAIN)" = 1 ]; then install -m 0755 $(TOOLBIN)/containerd $(TOOLBIN)/ctr $(TOOLBIN)/containerd-shim-runc-v2 $(TOOLBIN)/runc $(DESTDIR)$(BINDIR)/; fi

uninstall: ## remove what install put in place (configs under $(SYSCONFDIR)/vordr are kept)
	rm -f $(addprefix $(DESTDIR)$(BINDIR)/,containerd-shim-vordr-v1 vordr vordr-snapshotter) $(DESTDIR)$(VERIFIERDIR)/vordr-verifier \
		$(DESTDIR)$(SYSTEMDUNITDIR)/vordr-snapshotter.service $(DESTDIR)$(SYSTEMDUNITDIR)/vordr-metrics.service $(DESTDIR)$(SYSTEMDUNITDIR)/vordr-serve.service \
		$(DESTDIR)$(DATADIR)/bash-completion/completions/vordr \
		$(DESTDIR)$(DATADIR)/zsh/site-functions/_vordr $(DESTDIR)$(DATADIR)/fish/vendor_completions.d/vordr.fish $(DESTDIR)$(MANDIR)/man1/vordr.1
	rm -rf $(DESTDIR)$(DATADIR)/doc/vordr
	-rmdir $(DESTDIR)$(VERIFIERDIR) $(DESTDIR)$(LIBEXECDIR)/vordr 2>/dev/null

clean:
	rm -rf $(BIN)
