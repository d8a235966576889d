// Package harness mounts the product for real, through the kernel's FUSE, for the conformance
// suites: over the embedded S3 server, or over an external S3-compatible server (MinIO in CI)
// when MOUNT_S3_TEST_ENDPOINT names one. Every mount is unmounted in the test's cleanup, even
// when the test fails.
//
// The mount runs in a child process (the real mount-s3 binary, built once per test run), not
// in the test process: a program that opens files on a FUSE mount it serves itself deadlocks
// in Go, because the runtime registers every opened file with its one epoll instance, the
// kernel then asks the FUSE server whether the file is pollable, and the server's own reads
// of /dev/fuse wait on that same epoll instance.
//
// A machine that cannot mount (no /dev/fuse, not root) skips the suites, unless
// MOUNT_S3_REQUIRE_FUSE=1 is set, as CI sets it: then it fails, so CI can never pass by
// skipping the real mounts.
package harness

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/impl/s3/embedded"
	"github.com/mount-s3/mount-s3/internal/buildbin"
)

// Options adjust a test mount.
type Options struct {
	Prefix      string
	MetadataTTL time.Duration // 0: the default (minimal)
	ReadOnly    bool
	Args        []string // more command-line flags
	Env         []string // more environment, after (and over) the harness's own
	// DevFD mounts as Mountpoint's Kubernetes CSI driver does: the harness opens /dev/fuse,
	// mounts it on the directory itself (mount(2) with fd=N) and starts mount-s3 on
	// /dev/fd/3; unmounting stays the harness's job.
	DevFD bool
}

// Endpoint is the S3 server behind a test mount: an *embedded.Server, or an external server.
type Endpoint interface{ URL() string }

// Mount is a live test mount and the store behind it.
type Mount struct {
	Dir    string
	Store  s3.Store
	Server Endpoint
	cmd    *exec.Cmd
	log    *syncBuffer
	killed bool
	exited chan struct{} // closed when the process has ended
	err    error         // its exit status, once exited is closed
}

// Signal sends sig to the mount process.
func (m *Mount) Signal(t testing.TB, sig os.Signal) {
	t.Helper()
	if err := m.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// Exited reports whether the mount process has ended, waiting up to d for it.
func (m *Mount) Exited(d time.Duration) bool {
	select {
	case <-m.exited:
		return true
	case <-time.After(d):
		return false
	}
}

// Unmount unmounts now and waits for the mount process to end (cleanup then has nothing to do).
func (m *Mount) Unmount(t testing.TB) { m.unmount(t) }

// Kill ends the mount process with SIGKILL, as a crash would, and waits for it.
func (m *Mount) Kill(t testing.TB) {
	t.Helper()
	m.killed = true
	if err := m.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
}

// Bucket is the bucket of every test mount on the embedded server. On an external server each
// NewServer makes a bucket of its own (Mount.Store.Bucket() names it), so tests that run in
// parallel do not see each other's objects.
const Bucket = "conformance"

// RequireFUSE reports whether a test that cannot mount must fail rather than skip.
func RequireFUSE() bool { return os.Getenv("MOUNT_S3_REQUIRE_FUSE") == "1" }

// cannotMount skips or fails the test, per RequireFUSE.
func cannotMount(t testing.TB, why string, err error) {
	t.Helper()
	if RequireFUSE() {
		t.Fatalf("cannot mount (MOUNT_S3_REQUIRE_FUSE=1): %s: %v", why, err)
	}
	t.Skipf("cannot mount here (%s: %v); set MOUNT_S3_REQUIRE_FUSE=1 to make this a failure", why, err)
}

// NewServer starts an in-memory embedded S3 server with the test bucket, closed at cleanup.
// With MOUNT_S3_TEST_ENDPOINT set it uses that server instead, with a fresh bucket that is
// emptied and removed at cleanup (see external.go).
func NewServer(t testing.TB) (Endpoint, s3.Store) {
	t.Helper()
	if ExternalURL() != "" {
		return newExternal(t)
	}
	srv, err := embedded.Start(embedded.Options{Buckets: []string{Bucket}})
	if err != nil {
		t.Fatalf("embedded server: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	store, err := s3.NewSDKStore(context.Background(), s3.Config{
		Bucket: Bucket, EndpointURL: srv.URL(), ForcePathStyle: true, StaticCredentials: embedded.Credentials,
	})
	if err != nil {
		t.Fatalf("store: %v", err)
	}
	return srv, store
}

// New starts an embedded server and mounts its bucket at a fresh temporary directory.
func New(t testing.TB, opts Options) *Mount {
	t.Helper()
	srv, store := NewServer(t)
	return MountServer(t, srv, store, opts)
}

// Binary returns the path of a mount-s3 binary: $MOUNT_S3_BIN, or one built once for this
// test run (with the race detector when the tests have it).
func Binary(t testing.TB) string {
	t.Helper()
	bin, err := buildbin.Path(context.Background(), raceEnabled, nil)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// MountServer mounts store's bucket on srv at a fresh temporary directory with the mount-s3
// binary running in the foreground.
func MountServer(t testing.TB, srv Endpoint, store s3.Store, opts Options) *Mount {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		cannotMount(t, "/dev/fuse", err)
	}
	bin := Binary(t)
	dir := t.TempDir()
	args := []string{"--foreground", "--endpoint-url", srv.URL(), "--force-path-style", "--region", "us-east-1", "--fs-name", "mount-s3-test"}
	if opts.Prefix != "" {
		args = append(args, "--prefix", opts.Prefix)
	}
	if opts.MetadataTTL != 0 {
		args = append(args, "--metadata-ttl", strconv.FormatFloat(opts.MetadataTTL.Seconds(), 'f', -1, 64))
	}
	if opts.ReadOnly {
		args = append(args, "--read-only")
	}
	target := dir
	var fuseDev *os.File
	if opts.DevFD {
		fuseDev = mountFD(t, dir)
		target = "/dev/fd/3"
	}
	args = append(append(args, opts.Args...), store.Bucket(), target)

	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	cmd := exec.Command(bin, args...)
	// A binary built with the race detector sleeps a second at exit to catch late races; the
	// suites mount hundreds of times, and a race report still fails the mount's exit status.
	gorace := strings.TrimSpace(os.Getenv("GORACE"))
	if !strings.Contains(gorace, "atexit_sleep_ms") {
		gorace = strings.TrimSpace(gorace + " atexit_sleep_ms=0")
	}
	readyFD := "3"
	cmd.ExtraFiles = []*os.File{w}
	if fuseDev != nil {
		readyFD, cmd.ExtraFiles = "4", []*os.File{fuseDev, w}
	}
	cmd.Env = append(append(Env(srv), "GORACE="+gorace, "MOUNT_S3_DAEMON_READY_FD="+readyFD), opts.Env...)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if fuseDev != nil {
		fuseDev.Close() // the mount process holds the connection now, as the CSI driver leaves it
	}
	m := &Mount{Dir: dir, Store: store, Server: srv, cmd: cmd, log: logs, exited: make(chan struct{})}
	go func() {
		m.err = cmd.Wait()
		close(m.exited)
	}()
	t.Cleanup(func() { m.unmount(t) })

	line, _ := bufio.NewReader(r).ReadString('\n')
	r.Close()
	if strings.TrimSpace(line) != "ready" {
		<-m.exited
		cannotMount(t, "mount-s3 "+strings.Join(args, " "), fmt.Errorf("%s\n%s", strings.TrimSpace(line), logs.String()))
	}
	return m
}

// mountFD opens /dev/fuse and mounts it on dir, as a caller that hands mount-s3 a /dev/fd/N
// does. The connection is served once mount-s3 reads it; until then the kernel holds requests.
func mountFD(t testing.TB, dir string) *os.File {
	t.Helper()
	dev, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		cannotMount(t, "/dev/fuse", err)
	}
	data := fmt.Sprintf("fd=%d,rootmode=40000,user_id=%d,group_id=%d,allow_other,default_permissions", dev.Fd(), os.Getuid(), os.Getgid())
	if err := syscall.Mount("mount-s3-test", dir, "fuse.mount-s3", syscall.MS_NOSUID|syscall.MS_NODEV, data); err != nil {
		dev.Close()
		cannotMount(t, "mount(2) of /dev/fuse on "+dir, err)
	}
	// Runs last: if the test ends before the mount's own cleanup, nothing is left mounted.
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dev
}

// Env is the environment a mount-s3 process needs to reach srv (or a proxy in front of it):
// the embedded server's fixed credentials, or for an external server the test's own AWS
// environment.
func Env(srv Endpoint) []string {
	// Every test mount checks its inode and handle tables after each operation.
	env := append(os.Environ(), "MOUNT_S3_CHECK_INVARIANTS=1")
	if _, ok := srv.(*embedded.Server); ok || ExternalURL() == "" {
		env = append(env, "AWS_ACCESS_KEY_ID="+embedded.Credentials.AccessKeyID, "AWS_SECRET_ACCESS_KEY="+embedded.Credentials.SecretAccessKey)
	}
	return env
}

// Pid is the mount process's id.
func (m *Mount) Pid() int { return m.cmd.Process.Pid }

// RaceBuilt reports whether mounts run a binary built with the race detector, whose memory
// use is several times the product's.
func RaceBuilt() bool { return raceEnabled && os.Getenv("MOUNT_S3_BIN") == "" }

// Logs returns what the mount process has logged so far.
func (m *Mount) Logs() string { return m.log.String() }

// unmount unmounts, retrying while the kernel still holds the mount busy, then detaches it
// lazily so that no mount outlives the test, and waits for the mount process to exit.
func (m *Mount) unmount(t testing.TB) {
	for i := 0; ; i++ {
		err := syscall.Unmount(m.Dir, 0)
		if err == nil || err == syscall.EINVAL || err == syscall.ENOENT { // EINVAL: not mounted
			break
		}
		if err != syscall.EBUSY || i == 50 {
			t.Errorf("unmount %s: %v; detaching", m.Dir, err)
			syscall.Unmount(m.Dir, syscall.MNT_DETACH)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	select {
	case <-m.exited:
		if m.err != nil && !m.killed {
			t.Errorf("mount-s3 exited with %v", m.err)
		}
	case <-time.After(15 * time.Second):
		m.cmd.Process.Kill()
		<-m.exited
		t.Errorf("mount-s3 did not exit after unmount")
	}
	if t.Failed() {
		t.Logf("mount-s3 log:\n%s", m.log.String())
	}
}

// Put writes an object into the bucket behind the mount's back.
func (m *Mount) Put(t testing.TB, key string, body []byte) {
	t.Helper()
	if _, err := m.Store.Put(context.Background(), key, bytes.NewReader(body), int64(len(body)), s3.WriteOptions{}); err != nil {
		t.Fatalf("put %q: %v", key, err)
	}
}

// Delete removes an object behind the mount's back.
func (m *Mount) Delete(t testing.TB, key string) {
	t.Helper()
	if err := m.Store.Delete(context.Background(), key); err != nil {
		t.Fatalf("delete %q: %v", key, err)
	}
}

// Path is the absolute path of rel inside the mount.
func (m *Mount) Path(rel string) string {
	if rel == "" {
		return m.Dir
	}
	return m.Dir + "/" + rel
}

// syncBuffer collects a child's output safely while it runs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// FlushExitConflicts is `mount-s3 sync --flush`'s exit status when every change was written
// and the bucket won conflicts (the local versions are in lost+found).
const FlushExitConflicts = 3

// Flush runs `mount-s3 sync --flush dir` and returns its output. Exit status 3 (written, and
// conflicts moved local versions to lost+found) is no error: the bucket has every change,
// which is what the callers wait for; what lost+found holds is theirs to check.
func Flush(t testing.TB, dir string) ([]byte, error) {
	return FlushContext(context.Background(), t, dir)
}

// FlushContext is Flush bounded by ctx.
func FlushContext(ctx context.Context, t testing.TB, dir string) ([]byte, error) {
	t.Helper()
	out, err := exec.CommandContext(ctx, Binary(t), "sync", "--flush", dir).CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == FlushExitConflicts {
		err = nil
	}
	return out, err
}
