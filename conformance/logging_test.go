package conformance

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/conformance/harness"
)

// A background mount without --log-directory logs to syslog, as Mountpoint does (issue 15):
// the hints and failures reach the journal instead of nowhere. The test stands in for the
// syslog daemon at /dev/log, so it runs only where none listens there and it may create it.
func TestBackgroundMountLogsToSyslog(t *testing.T) {
	if _, err := os.Stat("/dev/log"); err == nil || os.Getuid() != 0 {
		t.Skip("a syslog daemon owns /dev/log here (or not root): nothing to stand in for")
	}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: "/dev/log", Net: "unixgram"})
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close(); os.Remove("/dev/log") })
	lines := make(chan string, 100)
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, _, err := conn.ReadFromUnix(buf)
			if err != nil {
				return
			}
			lines <- string(buf[:n])
		}
	}()

	srv, store := harness.NewServer(t)
	dir := t.TempDir()
	cmd := exec.Command(harness.Binary(t), "--endpoint-url", srv.URL(), "--force-path-style", "--region", "us-east-1", store.Bucket(), dir)
	cmd.Env = harness.Env(srv)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	t.Cleanup(func() {
		for i := 0; i < 50 && syscall.Unmount(dir, 0) == syscall.EBUSY; i++ {
			time.Sleep(100 * time.Millisecond)
		}
	})
	_, err = os.Stat(filepath.Join(dir, "missing"))
	require.True(t, os.IsNotExist(err))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644))
	require.Error(t, os.Remove(filepath.Join(dir, "f")), "delete without --allow-delete")

	deadline := time.After(10 * time.Second)
	var got []string
	for {
		select {
		case l := <-lines:
			got = append(got, l)
			if strings.Contains(l, "mount-s3") && strings.Contains(l, "msg=mounted") {
				// <30> is daemon.info; the tag names the program.
				require.True(t, strings.HasPrefix(l, "<30>"), "severity and facility: %q", l)
				return
			}
		case <-deadline:
			t.Fatalf("no 'mounted' line reached syslog; got:\n%s", strings.Join(got, "\n"))
		}
	}
}

// Bulk work logs a summary, not a line per object: an rm -rf of 300 written-back files in sync
// mode leaves a handful of info lines, and unmounting says when the write-back is complete.
func TestSyncBulkWorkLogsSummaries(t *testing.T) {
	srv, store := harness.NewServer(t)
	logDir := t.TempDir()
	m := syncMount(t, srv, store, t.TempDir(), "--log-directory", logDir)
	require.NoError(t, os.Mkdir(m.Path("d"), 0o755))
	for i := 0; i < 300; i++ {
		require.NoError(t, os.WriteFile(m.Path("d/f"+strings.Repeat("x", i%7)+string(rune('a'+i%26))+time.Duration(i).String()), []byte("x"), 0o644))
	}
	flush(t, m)
	require.NoError(t, os.RemoveAll(m.Path("d")))
	flush(t, m)
	m.Unmount(t)

	files, err := filepath.Glob(filepath.Join(logDir, "mount-s3-*.log"))
	require.NoError(t, err)
	require.Len(t, files, 1, "one log file per mount")
	b, err := os.ReadFile(files[0])
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	require.Less(t, len(lines), 30, "a line per object:\n%s", strings.Join(lines[:min(40, len(lines))], "\n"))
	require.Contains(t, string(b), "write-back complete")
	require.NotContains(t, string(b), "sync: deleted ")
}
