package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mount-s3/mount-s3/internal/buildbin"
)

// binary returns $MOUNT_S3_BIN, or cmd/mount-s3 built once per process into a temporary
// directory: the benchmark measures the code in this tree. Under the race detector (TestQuick
// with -race) the mount is built with it too, as the conformance harness does, so CI also
// race-checks the product under these workloads. The build is shared by every run in the
// process, so dir is always "": no run's teardown may remove it.
func binary(ctx context.Context, logw io.Writer) (bin, dir string, err error) {
	bin, err = buildbin.Path(ctx, raceEnabled, logw)
	return bin, "", err
}

// hasFlag reports whether `bin --help` lists flag, so rows for features that are not built
// yet say so instead of failing.
func hasFlag(bin, flag string) bool {
	out, _ := exec.Command(bin, "--help").CombinedOutput()
	return bytes.Contains(out, []byte(flag+" ")) || bytes.Contains(out, []byte(flag+"\n"))
}

// mounted is one live mount-s3 child process and its mount point.
type mounted struct {
	dir  string
	cmd  *exec.Cmd
	logs *capBuffer
	once sync.Once
	err  error
}

// live holds the mounts not yet unmounted, for the signal handler.
var live = struct {
	sync.Mutex
	m map[*mounted]bool
}{m: map[*mounted]bool{}}

func unmountAll() {
	live.Lock()
	ms := make([]*mounted, 0, len(live.m))
	for m := range live.m {
		ms = append(ms, m)
	}
	live.Unlock()
	for _, m := range ms {
		m.close()
	}
}

// mount starts mount-s3 in the foreground at a new temporary directory and returns once it
// reports ready on the MOUNT_S3_DAEMON_READY_FD pipe (fd 3).
func (e *env) mount(extra ...string) (*mounted, error) {
	dir, err := os.MkdirTemp("", "mount-s3-bench-")
	if err != nil {
		return nil, err
	}
	args := append([]string{"--foreground", "--fs-name", "mount-s3-bench"}, e.mountArgs...)
	args = append(append(args, extra...), e.bucket, dir)
	return e.spawn(dir, e.bin, args, append([]string{"MOUNT_S3_DAEMON_READY_FD=3"}, e.mountEnv...))
}

// spawn starts bin with args and env (on top of the bench's), which mounts at dir and says
// "ready" on its fd 3 once the mount is up; close unmounts dir and removes it.
func (e *env) spawn(dir, bin string, args, env []string) (*mounted, error) {
	r, w, err := os.Pipe()
	if err != nil {
		os.Remove(dir)
		return nil, err
	}
	defer r.Close()
	m := &mounted{dir: dir, logs: &capBuffer{max: 1 << 20}}
	m.cmd = exec.Command(bin, args...)
	m.cmd.Env = append(os.Environ(), env...)
	m.cmd.Stdout, m.cmd.Stderr = m.logs, m.logs
	if p := os.Getenv("BENCH_MOUNT_LOG"); p != "" {
		// The whole log of every mount, appended to a file, for a closer look at a row.
		// The file stays open for the life of the bench: the child writes to it until it exits.
		if f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err == nil {
			m.cmd.Stdout, m.cmd.Stderr = io.MultiWriter(m.logs, f), io.MultiWriter(m.logs, f)
		}
	}
	m.cmd.ExtraFiles = []*os.File{w}
	// Its own process group: a terminal's Ctrl-C reaches only the bench, whose handler then
	// unmounts in order, instead of racing the child's own unmount-on-SIGINT.
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := m.cmd.Start(); err != nil {
		w.Close()
		os.Remove(dir)
		return nil, err
	}
	w.Close()
	live.Lock()
	live.m[m] = true
	live.Unlock()

	ready := make(chan string, 1)
	go func() { line, _ := bufio.NewReader(r).ReadString('\n'); ready <- strings.TrimSpace(line) }()
	select {
	case line := <-ready:
		if line == "ready" {
			return m, nil
		}
		m.close()
		return nil, fmt.Errorf("%s %s: %q\n%s", filepath.Base(bin), strings.Join(args, " "), line, m.logs)
	case <-time.After(30 * time.Second):
		m.close()
		return nil, fmt.Errorf("%s not ready after 30 s\n%s", filepath.Base(bin), m.logs)
	}
}

func (m *mounted) path(rel string) string { return filepath.Join(m.dir, rel) }

// peakRSS is the mount process's VmHWM in KiB: its peak resident set since it started.
func (m *mounted) peakRSS() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", m.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmHWM:" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return 0
}

// rssKiB is the mount process's resident set now (VmRSS), in KiB.
func (m *mounted) rssKiB() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", m.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return 0
}

// cpu is the mount process's user+system CPU time so far, in seconds.
func (m *mounted) cpu() float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", m.cmd.Process.Pid))
	i := bytes.LastIndexByte(b, ')')
	if err != nil || i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is the state; utime and stime are fields 14, 15
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	s, _ := strconv.ParseFloat(f[12], 64)
	return (u + s) / 100 // USER_HZ is 100 on Linux
}

// close unmounts (retrying while busy, then detaching lazily so no mount outlives the run),
// waits for the process, killing it if it does not exit, and removes the directory. Safe
// to call more than once and from the signal handler.
func (m *mounted) close() error {
	m.once.Do(func() {
		for i := 0; ; i++ {
			err := syscall.Unmount(m.dir, 0)
			if err == nil || err == syscall.EINVAL || err == syscall.ENOENT {
				break
			}
			if err != syscall.EBUSY || i == 20 {
				m.err = fmt.Errorf("unmount %s: %v (detached)", m.dir, err)
				syscall.Unmount(m.dir, syscall.MNT_DETACH)
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		done := make(chan error, 1)
		go func() { done <- m.cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil && m.err == nil {
				m.err = fmt.Errorf("mount-s3 exited with %v\n%s", err, m.logs)
			}
		case <-time.After(15 * time.Second):
			m.cmd.Process.Kill()
			<-done
			m.err = fmt.Errorf("mount-s3 did not exit after unmount; killed")
		}
		os.Remove(m.dir)
		live.Lock()
		delete(live.m, m)
		live.Unlock()
	})
	return m.err
}

// capBuffer keeps the first max bytes of the child's log; enough to explain a failure
// without letting a chatty mount grow the bench's memory.
type capBuffer struct {
	mu  sync.Mutex
	b   bytes.Buffer
	max int
}

func (c *capBuffer) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if room := c.max - c.b.Len(); room > 0 {
		c.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (c *capBuffer) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.b.String()
}
