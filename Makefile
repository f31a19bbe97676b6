# The commands people type. `make test` is what CI runs (.ci/run).
GO ?= go
STATICCHECK = honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: run test test-short fuzz lint bench build

run:
	$(GO) run ./cmd/questlog up

build:
	$(GO) build -o questlog ./cmd/questlog

# The whole suite, with the race detector. Tests that need redis-server, kcat
# or chromium skip with a message where those are missing; CI installs them.
test:
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...
	$(MAKE) fuzz

# Each fuzz target of the API for FUZZTIME, about a minute in all (a
# crasher is written to internal/api/testdata/fuzz/, where plain `go test`
# replays it with the seeds). `go test -fuzz` takes one target at a time.
FUZZTIME ?= 10s
API_FUZZ = FuzzClassicQuery FuzzV1Body FuzzHeaders
fuzz:
	@for target in $(API_FUZZ); do \
		echo "fuzz $$target for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) ./internal/api || exit 1; \
	done

test-short:
	$(GO) test -count=1 ./...

lint:
	test -z "$$(gofmt -l .)" || (gofmt -l . && exit 1)
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

# Benchmarks: see BENCHMARKS.md for what each measures.
bench:
	$(GO) run ./bench/extract
	$(GO) run ./bench/report
	$(GO) run ./bench/ingest
	$(GO) run ./bench/scale
