# hookreg: see README.md. Targets and what they need: docs/repository.md.
GO ?= go
FUZZTIME ?= 60s

.PHONY: demo demo-etcd demo-etcd-steps test test-faults testdeps benchdeps cross generate check-generated lint fmt bench fuzz release

DEMO := demo
MIGRATOR := bin/migrator

## demo: the main job end to end on the embedded store: restore the oldest
## release fixture, plan, back up, upgrade offline, restore the result, status
demo:
	$(GO) build -o $(MIGRATOR) ./cmd/migrator
	rm -rf $(DEMO) && mkdir -p $(DEMO)
	@echo '# 1. restore a backup made by release 4.4.0'
	$(MIGRATOR) restore testdata/releases/4.4.0.tar.zst --store $(DEMO)/broker.db --config $(DEMO)/config
	@echo '# 2. what an upgrade to this release would run'
	$(MIGRATOR) plan --store $(DEMO)/broker.db
	@echo '# 3. back up the old data and its configuration'
	$(MIGRATOR) backup --store $(DEMO)/broker.db --config $(DEMO)/config --out $(DEMO)/before.tar.zst
	@echo '# 4. upgrade the backup offline, in a child process, into a new backup'
	$(MIGRATOR) upgrade --offline --in $(DEMO)/before.tar.zst --out $(DEMO)/after.tar.zst
	$(MIGRATOR) verify $(DEMO)/after.tar.zst
	@echo '# 5. restore the upgraded backup and show the status'
	$(MIGRATOR) restore $(DEMO)/after.tar.zst --store $(DEMO)/broker.db --config $(DEMO)/config
	$(MIGRATOR) status --store $(DEMO)/broker.db

## demo-etcd: the same job on the cluster store, against a throwaway
## three-member etcd cluster on loopback (internal/cmd/etcdcluster)
demo-etcd:
	$(GO) build -o $(MIGRATOR) ./cmd/migrator
	$(GO) build -o bin/etcdcluster ./internal/cmd/etcdcluster
	bin/etcdcluster $(MAKE) --no-print-directory demo-etcd-steps

# demo-etcd-steps runs under bin/etcdcluster, which sets ETCD_STORE.
demo-etcd-steps:
	rm -rf $(DEMO)/etcd && mkdir -p $(DEMO)/etcd
	@echo '# 1. restore a backup made by release 4.4.0 into the cluster'
	$(MIGRATOR) restore testdata/releases/4.4.0.tar.zst --store $(ETCD_STORE)
	@echo '# 2. what an upgrade to this release would run'
	$(MIGRATOR) plan --store $(ETCD_STORE)
	@echo '# 3. upgrade offline: a backup at one revision (kept), upgraded in a child process, restored as a new generation'
	$(MIGRATOR) upgrade --offline --store $(ETCD_STORE) --backup-dir $(DEMO)/etcd
	@echo '# 4. the status; a backup of the cluster restores into a bbolt file'
	$(MIGRATOR) status --store $(ETCD_STORE)
	$(MIGRATOR) backup --store $(ETCD_STORE) --out $(DEMO)/etcd/cluster.tar.zst
	$(MIGRATOR) restore $(DEMO)/etcd/cluster.tar.zst --store $(DEMO)/etcd/broker.db

## test: every test, the generated files' freshness and vet; no timeout
## (-timeout 0): a busy machine is slow, not wrong, and CI bounds the run
test: check-generated cross testdeps
	$(GO) vet ./...
	$(GO) test -timeout 0 ./...

## testdeps: fill the module cache with what the testscripts' scratch
## modules resolve offline (GOPROXY=off): the whole module graph of this
## module (go.mod files included) and the versions the scripts pin
testdeps:
	$(GO) list -m all >/dev/null
	$(GO) mod download golang.org/x/sync@v0.24.0 golang.org/x/sync@v0.25.0

## test-faults: the fault tests of the cluster store, on etcd member
## processes SIGKILLed and SIGSTOPped (about 2 minutes): make test skips
## them, CI runs both
test-faults:
	HOOKREG_FAULT_TESTS=1 $(GO) test -timeout 0 -count=1 -run 'Fault|ClusterFails' ./upgrade ./migrator ./store/etcd

# PLATFORMS are the systems a release builds besides the host's (see
# RELEASING.md): every package must compile for each of them. A release
# also builds linux/arm64; it is not checked here, as this module's code
# has no file of its own for an architecture (only for unix, linux and
# windows), so the host and darwin/arm64 compile every file linux/arm64
# would, and the check costs a third less from an empty build cache;
# cross fails when that stops being true (the go command's file lists
# for linux/amd64 and linux/arm64 differ).
PLATFORMS := darwin/arm64 windows/amd64
ARCHFILES := $(GO) list -f '{{.ImportPath}} {{.GoFiles}} {{.CgoFiles}} {{.SFiles}}' ./...

## cross: compile every package but the test-only etcd cluster helpers
## (internal/etcdtest, internal/cmd/etcdcluster) for each of PLATFORMS,
## without optimizations (-N -l): a check that it compiles, a quarter
## faster from an empty build cache; the release gate builds the binaries
cross:
	@[ "$$(GOOS=linux GOARCH=amd64 $(ARCHFILES))" = "$$(GOOS=linux GOARCH=arm64 $(ARCHFILES))" ] || { \
		echo 'cross: a package of this module compiles other files on linux/arm64 than on linux/amd64: add linux/arm64 to PLATFORMS'; exit 1; }
	@pkgs=$$($(GO) list ./... | grep -v -e /internal/etcdtest -e /internal/cmd/etcdcluster); for p in $(PLATFORMS); do \
		echo "GOOS=$${p%/*} GOARCH=$${p#*/} $(GO) build -gcflags=all='-N -l' (every package but the etcd cluster helpers)"; \
		GOOS=$${p%/*} GOARCH=$${p#*/} $(GO) build -gcflags=all='-N -l' $$pkgs || exit 1; \
	done

## generate: regenerate generated/ from registry.yaml
generate:
	$(GO) generate ./...

## check-generated: fail when generated/ is stale
check-generated:
	$(GO) run ./cmd/hookgen check

# AUDIT_SINCE is where this repository's hooks were finished: before it the
# example hooks were stubs (see docs/decisions.md)
AUDIT_SINCE := 5c66d75

# LINT_AGAINST are the references of hookgen lint. This repository's
# releases are the fixtures in testdata/releases, not git tags, so the
# default references (which require release tags once the registry names an
# older release) do not apply: lint compares the working tree with the
# default branch when the clone has one, else with HEAD, and the audit
# below checks every commit since AUDIT_SINCE.
LINT_AGAINST ?= $(shell git rev-parse -q --verify origin/HEAD >/dev/null && echo origin/HEAD || echo HEAD)

## lint: hookgen lint against LINT_AGAINST, hookgen audit of the history
## since AUDIT_SINCE, and gofmt
lint:
	$(GO) run ./cmd/hookgen lint --against $(LINT_AGAINST)
	$(GO) run ./cmd/hookgen audit --since $(AUDIT_SINCE)
	@test -z "$$(gofmt -l . | grep -v '^testdata/')" || { gofmt -l . | grep -v '^testdata/'; exit 1; }

## fmt: gofmt the tree
fmt:
	gofmt -w $$(git ls-files '*.go' | grep -v '^testdata/')

## bench: the benchmarks, each beside its reference (see docs/benchmarks.md)
bench: testdeps benchdeps
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 0 ./...

## benchdeps: what the benchmarks' references need: the zstd command,
## and the bbolt command's modules in the module cache (the benchmarks
## build it offline from the bbolt module in go.mod)
benchdeps:
	@command -v zstd >/dev/null || { echo 'make bench needs the zstd command (apt-get install zstd)' >&2; exit 1; }
	tmp=$$(mktemp -d) && sed 's/^module .*/module bbolttool/' go.mod > $$tmp/go.mod && cp go.sum $$tmp/ && \
		(cd $$tmp && GOFLAGS=-mod=mod $(GO) build -o /dev/null go.etcd.io/bbolt/cmd/bbolt); st=$$?; rm -rf $$tmp; exit $$st

## fuzz: each fuzz target for FUZZTIME
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParseRegistry$$' -fuzztime $(FUZZTIME) ./internal/registry
	$(GO) test -run '^$$' -fuzz '^FuzzH2Reprint$$' -fuzztime $(FUZZTIME) ./internal/codedigest
	$(GO) test -run '^$$' -fuzz '^FuzzReadArchive$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 100x ./archive
	$(GO) test -run '^$$' -fuzz '^FuzzDamagedStore$$' -fuzztime $(FUZZTIME) ./store/bolt

## release: the release gate, then reproducible binaries in dist/$(VERSION)
## (see RELEASING.md). hookgen release is the gate any product runs; this
## repository builds hookgen too, and seeds a missing release fixture with
## the example product's data of the release (internal/cmd/seed).
release:
	@test -n "$(VERSION)" || { echo 'usage: make release VERSION=X.Y.Z' >&2; exit 2; }
	$(GO) run ./cmd/hookgen release --version $(VERSION) --cmd ./cmd/hookgen \
		--seed-cmd '$(GO) run ./internal/cmd/seed "$$HOOKREG_RELEASE" "$$HOOKREG_STORE"'
