package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mount-s3/mount-s3/internal/buildbin"
)

// TestMain lets the test binary be the FUSE floor row's child process, as the bench
// binary is.
func TestMain(m *testing.M) {
	if floorChild() {
		return
	}
	code := m.Run()
	buildbin.Cleanup()
	os.Exit(code)
}

// TestQuick runs the whole benchmark at --quick sizes over the embedded server, so `make
// test` keeps the harness working: every workload must run on a real mount and read back
// exactly what was written. It asserts nothing about speed.
//
// It skips where it cannot mount (not root, no /dev/fuse), unless MOUNT_S3_REQUIRE_FUSE=1,
// as CI sets it, makes that a failure.
func TestQuick(t *testing.T) {
	cannot := func(why string) {
		if os.Getenv("MOUNT_S3_REQUIRE_FUSE") == "1" {
			t.Fatalf("cannot mount (MOUNT_S3_REQUIRE_FUSE=1): %s", why)
		}
		t.Skipf("cannot mount here (%s); set MOUNT_S3_REQUIRE_FUSE=1 to make this a failure", why)
	}
	if os.Geteuid() != 0 {
		cannot("not root")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		cannot(err.Error())
	}
	// Both network profiles: the server as it is, and behind the S3-like shaper.
	for _, p := range []profile{loopbackProfile, s3Profile} {
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
		var out, logs bytes.Buffer
		cfg := quickConfig()
		cfg.profile = p
		// Always the embedded server: CI must not depend on, or write to, a BENCH_* server.
		err := run(ctx, cfg, serverOptions{}, &out, &logs)
		cancel()
		t.Logf("profile %s:\n%s", p.describe(), out.String())
		if err != nil {
			t.Fatalf("%s: %v\nprogress:\n%s", p.name, err, logs.String())
		}
		for _, want := range []string{"seq read", "concurrent seq read", "rand 4 KiB read", "seq write", "create", "ls -l", "--cache",
			"sync: create", "sync: ls -l", "FUSE floor", "stat 1100 names", "one after another", "find + du", "RT floor",
			"entries in one dir: first entry", "sync: stat", "sync: cat", "sync: rand 4 KiB write",
			"FUSE floor: ls -l", "of the FUSE floor's speed"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("%s: table has no %q row", p.name, want)
			}
		}
	}
	live.Lock()
	defer live.Unlock()
	if len(live.m) != 0 {
		t.Errorf("%d mounts left after the run", len(live.m))
	}
}
