# mount-s3 build, test and demo targets. Go lives in /usr/local/go on the build machines.
export PATH := /usr/local/go/bin:$(PATH)
SHELL := /bin/bash

GO        ?= go
BIN       ?= bin
FUZZTIME  ?= 20s
# RAPID_CHECKS raises the number of cases of the model-vs-mount property tests.
RAPID_CHECKS ?=
DEMO_DIR  ?= /tmp/mount-s3-demo
PREFIX    ?= /usr/local
DESTDIR   ?=

.PHONY: build test unit conformance fuzz demo demo-stop vet clean test-embedded test-minio minio-start minio-stop

build:
	$(GO) build -o $(BIN)/mount-s3 ./cmd/mount-s3

vet:
	$(GO) vet ./...

# Installs the binary in $(PREFIX)/bin and the mount helpers mount(8) runs for an /etc/fstab
# line or `mount -t`: /sbin/mount.mount-s3 (Mountpoint's fstab type) and
# /sbin/mount.fuse.mount-s3 (type fuse.mount-s3), both links to the binary. DESTDIR stages it.
.PHONY: install uninstall
install: build
	install -D -m 0755 $(BIN)/mount-s3 $(DESTDIR)$(PREFIX)/bin/mount-s3
	install -d $(DESTDIR)/sbin
	ln -sf $(PREFIX)/bin/mount-s3 $(DESTDIR)/sbin/mount.mount-s3
	ln -sf $(PREFIX)/bin/mount-s3 $(DESTDIR)/sbin/mount.fuse.mount-s3

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/mount-s3 $(DESTDIR)/sbin/mount.mount-s3 $(DESTDIR)/sbin/mount.fuse.mount-s3

# Unit tests, store conformance and the real-mount suites, race detector on, on the embedded
# server; then the suites that matter most on a real S3-compatible store, on MinIO.
test: test-embedded test-minio

test-embedded: vet
	$(GO) test -race -count=1 -timeout 20m ./...

# On the pinned MinIO server (scripts/minio.sh builds it once, cached, and starts it on
# loopback): the store suite, the conditional-write probe, every real-mount suite (the
# sync-mode conflict scenarios and the SIGKILL test among them; tests whose keys MinIO cannot
# hold skip, see docs/STORES.md), the chaos seeds and the quick bench. MINIO_KEEP=1 leaves the
# server running.
test-minio:
	@set -e; eval "$$(scripts/minio.sh start)"; trap '[ -n "$(MINIO_KEEP)" ] || scripts/minio.sh stop' EXIT; \
	export MOUNT_S3_TEST_STORE=minio; \
	$(GO) test -race -count=1 -timeout 10m ./impl/s3/ -run 'TestSDKStoreReal'; \
	$(GO) test -race -count=1 -timeout 10m ./impl/s3/probe -run 'TestProbeExternal'; \
	$(GO) test -race -count=1 -timeout 20m ./conformance/...; \
	BENCH_ENDPOINT=$$MOUNT_S3_TEST_ENDPOINT BENCH_BUCKET=$$MOUNT_S3_TEST_BUCKET $(GO) run ./bench --quick

# The fault campaign: SEEDS seeds of each mode (MODES=streaming,sync), each a DURATION-long
# mixed workload through the fault proxy with the store down for DOWN once, on the embedded
# server (ENDPOINT=minio runs it against MinIO). SEED=S replays one seed. The last line says
# how many faults were injected. FIRST=F starts at seed F, to split a campaign across processes.
SEEDS    ?= 20
CYCLES   ?= 1000
SOAK     ?= 30m
MODES    ?= streaming,sync
DURATION ?= 20s
DOWN     ?= 60s
.PHONY: chaos
chaos:
	@set -eo pipefail; if [ "$(ENDPOINT)" = minio ]; then eval "$$(scripts/minio.sh start)"; export MOUNT_S3_TEST_STORE=minio; fi; \
	CHAOS_SEEDS=$(SEEDS) $(if $(FIRST),CHAOS_FIRST=$(FIRST)) CHAOS_MODES=$(MODES) CHAOS_DURATION=$(DURATION) CHAOS_DOWN=$(DOWN) $(if $(SEED),CHAOS_SEED=$(SEED)) \
	MOUNT_S3_REQUIRE_FUSE=1 $(GO) test -count=1 -timeout 0 -v -run TestChaos ./conformance/chaos | tee chaos.log | grep -E '^(---|ok|FAIL|panic)|chaos_test.go|Error'; \
	echo "full output (violations with each object's request history, mount logs): chaos.log"

minio-start:
	@scripts/minio.sh start
minio-stop:
	@scripts/minio.sh stop

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

# Crash cycles: SIGKILL a sync mount CYCLES times at random moments of write-back, a directory
# rename (1,000 files), an import and conflict moves, remounting the same sync dir and checking
# SYNC-MODE's invariants after each. SEED=S changes the draw.
.PHONY: crash
crash:
	CRASH_CYCLES=$(CYCLES) CRASH_DIR_FILES=1000 $(if $(SEED),CRASH_SEED=$(SEED)) MOUNT_S3_REQUIRE_FUSE=1 \
	$(GO) test -count=1 -timeout 0 -v -run 'TestCrashCycles' ./conformance/chaos

# Soak: SOAK of 16 readers, 8 writers, listings and renames on each mode, with the RSS, leak and
# latency figures (p50, p99) printed and appended to soak-report.txt. Runs a binary built
# without the race detector, so that the RSS bound is checked.
.PHONY: soak
soak: build
	SOAK_DURATION=$(SOAK) SOAK_REPORT=$(CURDIR)/soak-report.txt MOUNT_S3_BIN=$(CURDIR)/$(BIN)/mount-s3 MOUNT_S3_REQUIRE_FUSE=1 \
	$(GO) test -count=1 -timeout 0 -v -run 'TestSoak' ./conformance/chaos
