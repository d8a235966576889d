package conformance

import (
	"bytes"
	"context"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/conformance/harness"
	"github.com/mount-s3/mount-s3/impl/s3"
)

// TestSyncRenamesAndImportedDirectories: renames chained before any write-back, and rmdir and
// rename of directories that came from the bucket with their marker objects, leave exactly
// the objects the mount shows (Y8, Y9).
func TestSyncRenamesAndImportedDirectories(t *testing.T) {
	srv, store := harness.NewServer(t)
	ctx := context.Background()
	put := func(key, body string) {
		_, err := store.Put(ctx, key, bytes.NewReader([]byte(body)), int64(len(body)), s3.WriteOptions{})
		require.NoError(t, err)
	}
	put("w/", "")
	put("w/old/", "")
	put("w/old/x", "x from the bucket")
	put("w/gone/", "")
	put("w/chain-src", "chained")
	m := syncMount(t, srv, store, t.TempDir())

	// A chain of renames of a file whose data is not local, before anything is written back.
	require.NoError(t, os.Rename(m.Path("w/chain-src"), m.Path("w/chain-mid")))
	require.NoError(t, os.Rename(m.Path("w/chain-mid"), m.Path("w/chain-end")))
	// A directory from the bucket, renamed with its contents; another removed.
	require.NoError(t, os.Rename(m.Path("w/old"), m.Path("w/new")))
	require.NoError(t, os.Remove(m.Path("w/gone")))
	// A new file renamed twice.
	require.NoError(t, os.WriteFile(m.Path("w/n1"), []byte("new"), 0o644))
	require.NoError(t, os.Rename(m.Path("w/n1"), m.Path("w/n2")))
	require.NoError(t, os.Rename(m.Path("w/n2"), m.Path("w/n3")))

	flush(t, m)
	requireBucketMatches(t, m, "w")
	got := bucketObjects(t, store, "w/")
	require.Equal(t, "chained", got["w/chain-end"])
	require.Equal(t, "x from the bucket", got["w/new/x"])
	require.NotContains(t, got, "w/gone/", "rmdir of an imported directory deletes its marker")
	require.NotContains(t, got, "w/old/", "rename of an imported directory moves its marker")
}
