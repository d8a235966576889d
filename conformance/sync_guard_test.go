package conformance

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/conformance/harness"
)

// TestSyncBucketWarning: once the sync dir knows more objects than the warning limit, the
// next mount refuses with a message saying why and how to go on, and mounts with
// --accept-bucket-warning (Y11). The count comes from imports, never from a full listing.
func TestSyncBucketWarning(t *testing.T) {
	srv, store := harness.NewServer(t)
	syncDir := t.TempDir()
	m := syncMount(t, srv, store, syncDir)
	for i := 0; i < 8; i++ {
		require.NoError(t, os.WriteFile(m.Path(fmt.Sprintf("f%d", i)), []byte("x"), 0o644))
	}
	m.Unmount(t)

	dir := t.TempDir()
	cmd := exec.Command(harness.Binary(t), "--foreground", "--endpoint-url", srv.URL(), "--force-path-style",
		"--region", "us-east-1", "--sync-dir", syncDir, "--bucket-warning-limit", "5", store.Bucket(), dir)
	cmd.Env = harness.Env(srv)
	out, err := cmd.CombinedOutput()
	require.Error(t, err, "the mount must refuse: %s", out)
	require.Contains(t, string(out), "--accept-bucket-warning")
	require.Contains(t, string(out), "more than 5 objects")

	m2 := syncMount(t, srv, store, syncDir, "--bucket-warning-limit", "5", "--accept-bucket-warning")
	eventually(t, 5*time.Second, "the warning in the log", func() bool { return strings.Contains(m2.Logs(), "more than 5 objects") })
	_, err = os.Stat(m2.Path("f7"))
	require.NoError(t, err)
}
