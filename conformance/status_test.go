package conformance

import (
	"encoding/json"
	"os"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/conformance/harness"
	"github.com/mount-s3/mount-s3/impl/status"
)

func mountStatus(t *testing.T, m *harness.Mount, args ...string) string {
	t.Helper()
	out, err := exec.Command(harness.Binary(t), append(append([]string{"status"}, args...), m.Dir)...).CombinedOutput()
	require.NoError(t, err, "mount-s3 status: %s", out)
	return string(out)
}

// TestStatus: `mount-s3 status MNT` says what a mount is and, in sync mode, what the bucket is
// still owed (issue 7, item 8).
func TestStatus(t *testing.T) {
	srv, store := harness.NewServer(t)
	t.Run("streaming", func(t *testing.T) {
		m := harness.MountServer(t, srv, store, harness.Options{Prefix: "p/"})
		var r status.Report
		require.NoError(t, json.Unmarshal([]byte(mountStatus(t, m, "--json")), &r))
		require.Equal(t, status.Report{Mode: "streaming", Bucket: store.Bucket(), Prefix: "p/"}, r)
		require.Contains(t, mountStatus(t, m), "mode:      streaming")

		// The streaming counters move with the uploads (issue 18, item 4).
		for _, name := range []string{"a", "b"} {
			require.NoError(t, os.WriteFile(m.Path(name), []byte("x"), 0o644))
		}
		r = status.Report{}
		require.NoError(t, json.Unmarshal([]byte(mountStatus(t, m, "--json")), &r))
		require.Equal(t, uint64(2), r.Uploads)
		require.Zero(t, r.Failures)
		require.Contains(t, mountStatus(t, m), "uploads:   2 done, 0 failed")
	})
	t.Run("sync", func(t *testing.T) {
		syncDir := t.TempDir()
		m := syncMount(t, srv, store, syncDir)
		require.NoError(t, os.WriteFile(m.Path("waiting.txt"), []byte("not yet"), 0o644))
		var r status.Report
		require.NoError(t, json.Unmarshal([]byte(mountStatus(t, m, "--json")), &r))
		require.Equal(t, "sync", r.Mode)
		require.Equal(t, syncDir, r.SyncDir)
		require.Len(t, r.Pending, 1)
		require.Equal(t, "waiting.txt", r.Pending[0].Path)
		require.False(t, r.Pending[0].DirtySince.IsZero())
		require.Contains(t, mountStatus(t, m), "/waiting.txt  (changed ")

		flush(t, m)
		r = status.Report{}
		require.NoError(t, json.Unmarshal([]byte(mountStatus(t, m, "--json")), &r))
		require.Empty(t, r.Pending)
		require.Equal(t, uint64(1), r.Uploads)
	})
}
