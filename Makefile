# hookreg: see README.md. Every target works on a fresh machine with Go, git and make.
GO ?= go
FUZZTIME ?= 60s

.PHONY: demo test generate check-generated lint fmt bench fuzz

## demo: the main job end to end on the embedded store
demo:
	$(GO) run ./internal/demo

## test: every test, the generated files' freshness and vet
test: check-generated
	$(GO) vet ./...
	$(GO) test -timeout 20m ./...

## generate: regenerate generated/ from registry.yaml
generate:
	$(GO) generate ./...

## check-generated: fail when generated/ is stale
check-generated:
	$(GO) run ./cmd/hookgen check

## lint: hookgen lint against the default references, and gofmt
lint:
	$(GO) run ./cmd/hookgen lint
	@test -z "$$(gofmt -l . | grep -v '^testdata/')" || { gofmt -l . | grep -v '^testdata/'; exit 1; }

## fmt: gofmt the tree
fmt:
	gofmt -w $$(git ls-files '*.go' | grep -v '^testdata/')

## bench: the benchmarks, each beside its reference (see README.md)
bench:
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 60m ./...

## fuzz: each fuzz target for FUZZTIME
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParseRegistry$$' -fuzztime $(FUZZTIME) ./internal/registry
