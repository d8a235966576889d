package conformance

import (
	"bytes"
	"errors"
	"os"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/conformance/harness"
)

// TestSyncDiskFull: when the disk of the sync dir fills up, the write that does not fit fails
// with ENOSPC, files closed before are intact, and they still reach the bucket (SYNC.md).
func TestSyncDiskFull(t *testing.T) {
	syncDir := t.TempDir()
	if err := syscall.Mount("tmpfs", syncDir, "tmpfs", 0, "size=6m"); err != nil {
		if harness.RequireFUSE() {
			t.Fatalf("mount a small tmpfs for the sync dir: %v", err)
		}
		t.Skipf("cannot mount a tmpfs here: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(syncDir, syscall.MNT_DETACH) })
	srv, store := harness.NewServer(t)
	m := syncMount(t, srv, store, syncDir)

	kept := bytes.Repeat([]byte("kept "), 200<<10/5) // 200 KiB
	require.NoError(t, os.WriteFile(m.Path("kept.bin"), kept, 0o644))

	f, err := os.Create(m.Path("too-big.bin"))
	require.NoError(t, err)
	chunk := bytes.Repeat([]byte{1}, 1<<20)
	var werr error
	for i := 0; i < 16 && werr == nil; i++ {
		_, werr = f.Write(chunk)
	}
	if werr == nil {
		werr = f.Sync()
	}
	f.Close()
	require.True(t, errors.Is(werr, syscall.ENOSPC), "a write past the sync dir's space: %v", werr)

	got, err := os.ReadFile(m.Path("kept.bin"))
	require.NoError(t, err)
	require.True(t, bytes.Equal(kept, got), "a file closed before is intact")
	require.NoError(t, os.Remove(m.Path("too-big.bin")))
	flush(t, m)
	require.Equal(t, string(kept), bucketObjects(t, store, "kept.bin")["kept.bin"])
}
