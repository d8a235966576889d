package conformance

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/conformance/harness"
	"github.com/mount-s3/mount-s3/impl/s3"
)

// TestSyncPrefixAndHiddenKeys: a sync mount of a prefix reads and writes only below it (K8),
// and keys that cannot be paths stay hidden and untouched (K3), even across a directory rename.
func TestSyncPrefixAndHiddenKeys(t *testing.T) {
	harness.SkipUnstorableKeys(t, []string{"pre/d//double", "pre/d/./dot"})
	srv, store := harness.NewServer(t)
	ctx := context.Background()
	for key, body := range map[string]string{
		"outside": "not ours", "pre/d/a": "a", "pre/d//double": "hidden", "pre/d/./dot": "hidden", "pre/top": "top",
	} {
		_, err := store.Put(ctx, key, strings.NewReader(body), int64(len(body)), s3.WriteOptions{})
		require.NoError(t, err)
	}
	m := harness.MountServer(t, srv, store, harness.Options{Prefix: "pre/", Args: []string{"--sync-dir", t.TempDir(), "--write-back-delay", "1h"}})
	entries, err := os.ReadDir(m.Path("d"))
	require.NoError(t, err)
	require.Len(t, entries, 1, "only the valid name is listed")
	require.Equal(t, "a", entries[0].Name())
	require.NoError(t, os.WriteFile(m.Path("d/new"), []byte("new"), 0o644))
	require.NoError(t, os.Mkdir(m.Path("e"), 0o755))
	require.NoError(t, os.Rename(m.Path("d"), m.Path("e/d")))
	flush(t, m)
	got := bucketObjects(t, store, "")
	require.Equal(t, "not ours", got["outside"])
	require.Equal(t, "a", got["pre/e/d/a"])
	require.Equal(t, "new", got["pre/e/d/new"])
	require.Contains(t, got, "pre/e/")
	require.NotContains(t, got, "pre/d/a")
	for k := range got {
		require.True(t, k == "outside" || strings.HasPrefix(k, "pre/"), "wrote outside the prefix: %s", k)
	}
	t.Logf("keys after the rename: %v", keysOf(got))
}

func keysOf(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
