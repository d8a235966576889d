package conformance

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/conformance/harness"
)

// dataFiles counts the data files in a sync dir's local layer.
func dataFiles(t *testing.T, syncDir string) int {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(syncDir, "data"))
	require.NoError(t, err)
	return len(entries)
}

// TestSyncExpiry: clean data unused for --expire-after leaves the local layer, its metadata
// stays, and the next read fetches it from the bucket again (Y10). Dirty data never expires.
func TestSyncExpiry(t *testing.T) {
	srv, store := harness.NewServer(t)
	syncDir := t.TempDir()
	m := syncMount(t, srv, store, syncDir, "--expire-after", "1s")
	body := bytes.Repeat([]byte("expire me "), 20000)
	require.NoError(t, os.WriteFile(m.Path("kept.bin"), body, 0o644))
	require.NoError(t, os.WriteFile(m.Path("dirty.bin"), []byte("not yet in the bucket"), 0o644))
	require.Equal(t, 2, dataFiles(t, syncDir))

	// Both reach the bucket; then dirty.bin changes again, so only kept.bin is clean.
	flush(t, m)
	require.NoError(t, os.WriteFile(m.Path("dirty.bin"), []byte("changed after the flush"), 0o644))

	deadline := time.Now().Add(20 * time.Second)
	for dataFiles(t, syncDir) != 1 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	require.Equal(t, 1, dataFiles(t, syncDir), "the clean file's data expires; the dirty one's stays\n%s", m.Logs())

	fi, err := os.Stat(m.Path("kept.bin"))
	require.NoError(t, err)
	require.Equal(t, int64(len(body)), fi.Size(), "metadata stays local")
	got, err := os.ReadFile(m.Path("kept.bin"))
	require.NoError(t, err)
	require.True(t, bytes.Equal(body, got), "the next read fetches it again")
	got, err = os.ReadFile(m.Path("dirty.bin"))
	require.NoError(t, err)
	require.Equal(t, "changed after the flush", string(got))
}
