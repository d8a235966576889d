package conformance

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/mount-s3/mount-s3/conformance/harness"
	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/impl/s3/embedded"
	"github.com/mount-s3/mount-s3/impl/status"
)

func mountStatus(t *testing.T, m *harness.Mount, args ...string) string {
	t.Helper()
	out, err := exec.Command(harness.Binary(t), append(append([]string{"status"}, args...), m.Dir)...).CombinedOutput()
	require.NoError(t, err, "mount-s3 status: %s", out)
	t.Logf("mount-s3 status %s:\n%s", strings.Join(args, " "), out)
	return string(out)
}

// statusJSON is `mount-s3 status --json MNT` read back: the summary line, then every entry.
func statusJSON(t *testing.T, m *harness.Mount) (status.Summary, []status.Line) {
	t.Helper()
	cmd := exec.Command(harness.Binary(t), "status", "--json", m.Dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "mount-s3 status --json: %s", stderr.String())
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	var lines []status.Line
	for sc.Scan() {
		var l status.Line
		require.NoError(t, json.Unmarshal(sc.Bytes(), &l), "line %q", sc.Text())
		lines = append(lines, l)
	}
	require.NotEmpty(t, lines)
	require.NotNil(t, lines[0].Summary, "the first line is the summary: %s", out)
	return *lines[0].Summary, lines[1:]
}

// flushCmd runs `mount-s3 sync --flush MNT` and returns its output and exit status.
func flushCmd(t *testing.T, m *harness.Mount) (string, string, int) {
	t.Helper()
	cmd := exec.Command(harness.Binary(t), "sync", "--flush", m.Dir)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	t.Logf("mount-s3 sync --flush: exit %d\n%s%s", cmd.ProcessState.ExitCode(), stdout.String(), stderr.String())
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()
}

// TestStatus: `mount-s3 status MNT` says what a mount is and, in sync mode, sums up what the
// bucket is still owed; --all and --json list every entry (issue 15, item 2).
func TestStatus(t *testing.T) {
	srv, store := harness.NewServer(t)
	t.Run("streaming", func(t *testing.T) {
		m := harness.MountServer(t, srv, store, harness.Options{Prefix: "p/"})
		s, entries := statusJSON(t, m)
		require.Equal(t, status.Summary{Mode: "streaming", Bucket: store.Bucket(), Prefix: "p/"}, s)
		require.Empty(t, entries)
		require.Contains(t, mountStatus(t, m), "mode:       streaming")

		// The streaming counters move with the uploads (issue 18, item 4).
		for _, name := range []string{"a", "b"} {
			require.NoError(t, os.WriteFile(m.Path(name), []byte("x"), 0o644))
		}
		s, _ = statusJSON(t, m)
		require.Equal(t, uint64(2), s.Uploads)
		require.Zero(t, s.Failures)
		require.Contains(t, mountStatus(t, m), "uploads:    2 done, 0 failed")

		stdout, stderr, code := flushCmd(t, m)
		require.Equal(t, 1, code, "%s%s", stdout, stderr)
		require.Contains(t, stderr, "streaming mount")
		require.NotContains(t, stderr, "sync dir", "nothing is pending on a streaming mount")
	})
	t.Run("sync", func(t *testing.T) {
		syncDir := t.TempDir()
		m := syncMount(t, srv, store, syncDir)
		require.NoError(t, os.WriteFile(m.Path("waiting.txt"), []byte("not yet"), 0o644))
		s, entries := statusJSON(t, m)
		require.Equal(t, "sync", s.Mode)
		require.Equal(t, syncDir, s.SyncDir)
		require.Equal(t, 1, s.PendingUploads)
		require.Equal(t, int64(7), s.PendingBytes)
		require.False(t, s.OldestPending.IsZero())
		require.Len(t, entries, 1)
		require.Equal(t, "waiting.txt", entries[0].Pending.Path)
		require.Equal(t, int64(7), entries[0].Pending.Size)
		text := mountStatus(t, m)
		require.Contains(t, text, "pending:    1 uploads (7 B), 0 deletes, 0 renames in progress; oldest waiting ")
		require.Contains(t, text, "(every entry: mount-s3 status --all ")
		require.NotContains(t, text, "/waiting.txt", "the plain status is a summary")
		require.Contains(t, mountStatus(t, m, "--all"), "pending     /waiting.txt  (changed, 7 B, waiting ")

		stdout, stderr, code := flushCmd(t, m)
		require.Equal(t, 0, code, "%s%s", stdout, stderr)
		require.Contains(t, stdout, "flushed: 1 uploaded (7 B), 0 deleted, 0 renamed in ")
		s, entries = statusJSON(t, m)
		require.Zero(t, s.PendingUploads)
		require.Empty(t, entries)
		require.Equal(t, uint64(1), s.Uploads)
	})
}

// TestStatusManyPending: a report has no size limit. The extended attribute it used to travel
// in failed from about 700 pending changes ("argument list too long"), exactly when a big copy
// is being written back (issue 15).
func TestStatusManyPending(t *testing.T) {
	srv, store := harness.NewServer(t)
	m := syncMount(t, srv, store, t.TempDir())
	const n = 3000
	require.NoError(t, os.MkdirAll(m.Path("big/copy"), 0o755))
	for i := 0; i < n; i++ {
		require.NoError(t, os.WriteFile(m.Path(fmt.Sprintf("big/copy/a-rather-long-file-name-%05d.dat", i)), []byte("data"), 0o644))
	}
	s, entries := statusJSON(t, m)
	require.Equal(t, n+2, s.PendingUploads, "the files and the two directories")
	require.Equal(t, int64(4*n), s.PendingBytes)
	require.Len(t, entries, n+2)
	seen := map[string]bool{}
	for _, e := range entries {
		require.NotNil(t, e.Pending)
		seen[e.Pending.Path] = true
	}
	require.True(t, seen["big/copy/a-rather-long-file-name-02999.dat"])
	text := mountStatus(t, m)
	require.Contains(t, text, fmt.Sprintf("pending:    %d uploads", n+2))
	require.Less(t, strings.Count(text, "\n"), 20, "the summary is short whatever is pending:\n%s", text)
	require.Equal(t, n+2, strings.Count(mountStatus(t, m, "--all"), "\npending     /"))

	stdout, stderr, code := flushCmd(t, m)
	require.Equal(t, 0, code, "%s%s", stdout, stderr)
	require.Contains(t, stdout, fmt.Sprintf("flushed: %d uploaded", n+2))
}

// TestFlushReportsConflicts: a flush that wrote everything but lost conflicts to the bucket
// names each one with the lost+found file it made, and exits 3 (issue 15, item 3: it used to
// exit 0 and say nothing).
func TestFlushReportsConflicts(t *testing.T) {
	srv, store := harness.NewServer(t)
	m := syncMount(t, srv, store, t.TempDir())
	require.NoError(t, os.WriteFile(m.Path("a.txt"), []byte("base"), 0o644))
	require.NoError(t, os.WriteFile(m.Path("b.txt"), []byte("base"), 0o644))
	flush(t, m)
	m.Put(t, "a.txt", []byte("their version"))
	require.NoError(t, os.WriteFile(m.Path("a.txt"), []byte("my edit"), 0o644))
	require.NoError(t, os.WriteFile(m.Path("b.txt"), []byte("no conflict"), 0o644))
	stdout, stderr, code := flushCmd(t, m)
	require.Equal(t, harness.FlushExitConflicts, code, "%s%s", stdout, stderr)
	lf := lostFile(t, m, "a.txt")
	rel, err := filepath.Rel(m.Dir, lf)
	require.NoError(t, err)
	require.Contains(t, stdout, "flushed: 2 uploaded")
	require.Contains(t, stdout, "conflicts: 1;")
	require.Contains(t, stdout, "/a.txt: the local version is now /"+rel)
	s, _ := statusJSON(t, m)
	require.Equal(t, uint64(1), s.Conflicts)
	require.Equal(t, 1, s.LostFound)
	require.Contains(t, mountStatus(t, m, "--all"), "lost+found  /"+rel+"  (was /a.txt, 7 B)")

	// The next flush has nothing new to say.
	stdout, stderr, code = flushCmd(t, m)
	require.Equal(t, 0, code, "%s%s", stdout, stderr)
	require.Equal(t, "flushed: nothing was pending; the bucket has every change\n", stdout)
}

// TestFlushStoreRefuses: a flush the store refuses ends at once with the store's reason in
// words and exit 4; the change stays pending (issue 15, item 3: it said only "input/output
// error", after 44 s).
func TestFlushStoreRefuses(t *testing.T) {
	var refusing atomic.Bool
	srv, err := embedded.Start(embedded.Options{Buckets: []string{harness.Bucket}, Middleware: refusePuts("denied.txt", &refusing)})
	require.NoError(t, err)
	t.Cleanup(func() { srv.Close() })
	store, err := s3.NewSDKStore(context.Background(), s3.Config{Bucket: harness.Bucket, EndpointURL: srv.URL(), ForcePathStyle: true, StaticCredentials: embedded.Credentials})
	require.NoError(t, err)
	m := syncMount(t, srv, store, t.TempDir())
	refusing.Store(true)
	require.NoError(t, os.WriteFile(m.Path("denied.txt"), []byte("kept"), 0o644))
	stdout, stderr, code := flushCmd(t, m)
	require.Equal(t, 4, code, "%s%s", stdout, stderr)
	require.Contains(t, stdout, "flush stopped: 0 uploaded")
	require.Contains(t, stdout, "error: the store did not take the write-back: ")
	require.Contains(t, stdout, "denied PutObject in bucket \"conformance\" (AccessDenied): the credentials need s3:PutObject there")
	require.Contains(t, stdout, "safe in the sync dir")
	require.NotContains(t, stdout, "operation error", "the SDK's chain stays in the log")
	s, _ := statusJSON(t, m)
	require.Equal(t, 1, s.PendingUploads)
	require.NotEmpty(t, s.LastError)
	require.False(t, s.LastErrorAt.IsZero())

	refusing.Store(false)
	stdout, stderr, code = flushCmd(t, m)
	require.Equal(t, 0, code, "%s%s", stdout, stderr)
	require.Equal(t, "kept", bucketObjects(t, store, "denied.txt")["denied.txt"])
}

// TestFlushProgressOnTerminal: on a terminal, a flush that takes a while shows its progress
// (done/total, bytes, rate) on one line it redraws, then its summary (issue 15, item 3: it
// printed nothing for minutes). Without a terminal it prints only the summary.
func TestFlushProgressOnTerminal(t *testing.T) {
	release := make(chan struct{})
	var once atomic.Bool
	hold := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/slow.txt") {
				<-release
			}
			next.ServeHTTP(w, r)
		})
	}
	srv, err := embedded.Start(embedded.Options{Buckets: []string{harness.Bucket}, Middleware: hold})
	require.NoError(t, err)
	t.Cleanup(func() {
		if once.CompareAndSwap(false, true) {
			close(release)
		}
		srv.Close()
	})
	store, err := s3.NewSDKStore(context.Background(), s3.Config{Bucket: harness.Bucket, EndpointURL: srv.URL(), ForcePathStyle: true, StaticCredentials: embedded.Credentials})
	require.NoError(t, err)
	m := syncMount(t, srv, store, t.TempDir())
	require.NoError(t, os.WriteFile(m.Path("fast.txt"), bytes.Repeat([]byte("f"), 4096), 0o644))
	require.NoError(t, os.WriteFile(m.Path("slow.txt"), []byte("slow"), 0o644))
	go func() {
		time.Sleep(2 * time.Second)
		if once.CompareAndSwap(false, true) {
			close(release)
		}
	}()
	// script(1) runs the flush on a pseudo-terminal and copies what it drew.
	out, err := exec.Command("script", "-qfec", harness.Binary(t)+" sync --flush "+m.Dir, "/dev/null").CombinedOutput()
	require.NoError(t, err, "%s", out)
	text := string(out)
	t.Logf("on a terminal:\n%q", text)
	require.Contains(t, text, "\r\x1b[Kflushing: ", "the progress line is redrawn in place")
	require.Regexp(t, `flushing: 1/2 changes written, 4\.0 KiB, [0-9.]+ [KMG]?i?B/s, [12]s`, text)
	require.Contains(t, text, "flushed: 2 uploaded (4.0 KiB), 0 deleted, 0 renamed in ")
}

// TestStreamingAsksNoXattrs: a streaming mount keeps no extended attributes (S8) and tells the
// kernel so at its first GETXATTR, so that writes (the kernel asks for security.capability
// before each) and `ls -l` entries (security.selinux, an ACL) cost no round trip; status still
// finds the control socket, through the root's listxattr.
func TestStreamingAsksNoXattrs(t *testing.T) {
	srv, store := harness.NewServer(t)
	m := harness.MountServer(t, srv, store, harness.Options{Args: []string{"--debug-fuse"}})
	f, err := os.Create(m.Path("small-writes"))
	require.NoError(t, err)
	for i := 0; i < 50; i++ {
		_, err := f.Write([]byte("0123456789"))
		require.NoError(t, err)
	}
	require.NoError(t, f.Close())
	_, err = unix.Getxattr(m.Path("small-writes"), "user.any", make([]byte, 64))
	require.ErrorIs(t, err, syscall.ENOTSUP)
	_, err = unix.Lgetxattr(m.Path("small-writes"), "security.selinux", make([]byte, 64))
	require.ErrorIs(t, err, syscall.ENOTSUP)
	// The mount's log reaches the test through a pipe: the line of a request answered a
	// moment ago may not be in yet.
	require.Eventually(t, func() bool { return strings.Contains(m.Logs(), "<- GetXattr") }, 5*time.Second, 10*time.Millisecond,
		"the fuse debug log shows GETXATTRs: the count below means something")
	asked := strings.Count(m.Logs(), "<- GetXattr")
	require.LessOrEqual(t, asked, 2, "the kernel asks once (or twice, racing) and then answers itself:\n%s", m.Logs())

	s, _ := statusJSON(t, m)
	require.Equal(t, "streaming", s.Mode)
	n, err := unix.Listxattr(m.Path("small-writes"), make([]byte, 256))
	require.NoError(t, err)
	require.Zero(t, n, "files list no attributes")
}
