// Package buildbin builds the mount-s3 binary for tests and the bench, once per process.
//
// $MOUNT_S3_BIN, when set, names a prebuilt binary that Path returns instead of building.
// Otherwise cmd/mount-s3 is built with `go build` into a temporary directory, with the race
// detector when the caller asks for it (callers pass whether their own build has it, so the
// product is race-checked under the same tests). A successful build is kept for the rest of
// the process; Cleanup removes it.
package buildbin

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
)

// envVar names a prebuilt mount-s3 binary to use instead of building one.
const envVar = "MOUNT_S3_BIN"

const pkg = "github.com/mount-s3/mount-s3/cmd/mount-s3"

type result struct {
	dir, bin string
	err      error
}

var (
	mu     sync.Mutex
	builds = map[bool]*result{} // by race
)

// Path returns $MOUNT_S3_BIN if it is set, or else Build's binary.
func Path(ctx context.Context, race bool, log io.Writer) (string, error) {
	if p := os.Getenv(envVar); p != "" {
		return p, nil
	}
	return Build(ctx, race, log)
}

// Build builds cmd/mount-s3 (with -race if race) into a temporary directory the first time
// it is called in this process for that race setting, and returns that binary's path after.
// The go command line is written to log, which may be nil; the build's output is in the
// error. A failed build is remembered too, unless it failed because ctx ended.
func Build(ctx context.Context, race bool, log io.Writer) (string, error) {
	mu.Lock()
	defer mu.Unlock()
	if r := builds[race]; r != nil {
		return r.bin, r.err
	}
	r := build(ctx, race, log)
	if r.err == nil || ctx.Err() == nil {
		builds[race] = r
	}
	return r.bin, r.err
}

func build(ctx context.Context, race bool, log io.Writer) *result {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	dir, err := os.MkdirTemp("", "mount-s3-bin-")
	if err != nil {
		return &result{err: err}
	}
	bin := filepath.Join(dir, "mount-s3")
	args := []string{"build", "-o", bin}
	if race {
		args = append(args, "-race")
	}
	args = append(args, pkg)
	if log != nil {
		fmt.Fprintf(log, "building mount-s3: go %s\n", strings.Join(args, " "))
	}
	if out, err := exec.CommandContext(ctx, goBin, args...).CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return &result{err: fmt.Errorf("go build: %v\n%s", err, out)}
	}
	return &result{dir: dir, bin: bin}
}

// Cleanup removes the binaries Build built in this process; a later Build builds again.
func Cleanup() {
	mu.Lock()
	defer mu.Unlock()
	for race, r := range builds {
		if r.dir != "" {
			os.RemoveAll(r.dir)
		}
		delete(builds, race)
	}
}
