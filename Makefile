# mount-s3 build, test and demo targets. Go lives in /usr/local/go on the build machines.
export PATH := /usr/local/go/bin:$(PATH)

GO        ?= go
BIN       ?= bin
FUZZTIME  ?= 20s
# RAPID_CHECKS raises the number of cases of the model-vs-mount property tests.
RAPID_CHECKS ?=
DEMO_DIR  ?= /tmp/mount-s3-demo

.PHONY: build test unit conformance fuzz demo demo-stop vet clean

build:
	$(GO) build -o $(BIN)/mount-s3 ./cmd/mount-s3

vet:
	$(GO) vet ./...

# Unit tests, store conformance and the real-mount suites, race detector on.
test: vet
	$(GO) test -race -count=1 -timeout 20m ./...

unit:
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v /conformance)

# Only the suites that mount for real.
conformance:
	$(GO) test -race -count=1 -timeout 30m ./conformance/... $(if $(RAPID_CHECKS),-args -rapid.checks=$(RAPID_CHECKS))

# Each fuzz target for a bounded time (FUZZTIME per target).
fuzz:
	@for t in $$($(GO) test -list '^Fuzz' ./fuzz | grep '^Fuzz'); do \
		echo "== $$t"; $(GO) test ./fuzz -run='^$$' -fuzz="^$$t$$" -fuzztime=$(FUZZTIME) || exit 1; \
	done

# Builds, seeds an embedded bucket with sample objects, and mounts it at $(DEMO_DIR)/mnt.
demo: build
	@scripts/demo.sh "$(DEMO_DIR)" "$(BIN)/mount-s3"

demo-stop:
	-umount "$(DEMO_DIR)/mnt"

clean:
	rm -rf $(BIN)

# End-to-end workloads on a real mount next to the raw SDK against the same server, in one
# table (needs root and /dev/fuse). BENCH_ARGS=--quick for CI sizes; BENCH_ENDPOINT,
# BENCH_BUCKET and BENCH_REGION point it at another S3-compatible server.
.PHONY: bench
bench:
	$(GO) run ./bench $(BENCH_ARGS)
