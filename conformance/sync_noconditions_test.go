package conformance

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/conformance/harness"
	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/impl/s3/embedded"
	"github.com/mount-s3/mount-s3/impl/s3/probe"
	"github.com/mount-s3/mount-s3/impl/s3/probe/probetest"
	"github.com/mount-s3/mount-s3/spec/syncrule"
)

// TestSyncConflictsStoreIgnoresConditions: against a store that silently ignores If-Match /
// If-None-Match (many S3-compatible ones do), sync mode finds out at start, says so with the
// window that remains, and still detects conflicts (C3) by a HEAD before each upload: the
// bucket wins and the local version goes to lost+found (C4).
func TestSyncConflictsStoreIgnoresConditions(t *testing.T) {
	var strip probetest.StripConditions
	srv, err := embedded.Start(embedded.Options{Buckets: []string{harness.Bucket}, Middleware: strip.Middleware})
	require.NoError(t, err)
	t.Cleanup(func() { srv.Close() })
	store, err := s3.NewSDKStore(context.Background(), s3.Config{Bucket: harness.Bucket, EndpointURL: srv.URL(),
		ForcePathStyle: true, StaticCredentials: embedded.Credentials})
	require.NoError(t, err)
	m := syncMount(t, srv, store, t.TempDir())
	// The mount's output reaches the harness through a pipe: wait for it.
	require.True(t, assertEventually(func() bool { return strings.Contains(m.Logs(), "the store ignores conditional writes") }),
		"the probe found out:\n%s", m.Logs())
	require.Contains(t, m.Logs(), "leaves a window of one request", "and the window is stated")
	probed := strip.Stripped.Load()
	require.Positive(t, probed, "the probe sent conditions")

	require.NoError(t, os.MkdirAll(m.Path("c"), 0o755))
	require.NoError(t, os.WriteFile(m.Path("c/a.txt"), []byte("base"), 0o644))
	flush(t, m)
	requireBucketMatches(t, m, "c")

	// Changed here and there: their version wins.
	m.Put(t, "c/a.txt", []byte("their version"))
	require.NoError(t, os.WriteFile(m.Path("c/a.txt"), []byte("my edit, closed"), 0o644))
	// New here and there: theirs came first.
	m.Put(t, "c/new.txt", []byte("their new file"))
	require.NoError(t, os.WriteFile(m.Path("c/new.txt"), []byte("my new file"), 0o644))
	flush(t, m)

	objs := bucketObjects(t, store, "c/")
	require.Equal(t, "their version", objs["c/a.txt"], "the bucket is not overwritten")
	require.Equal(t, "their new file", objs["c/new.txt"], "the bucket is not overwritten")
	eventuallyReads(t, m.Path("c/a.txt"), "their version")
	eventuallyReads(t, m.Path("c/new.txt"), "their new file")
	for orig, mine := range map[string]string{"c/a.txt": "my edit, closed", "c/new.txt": "my new file"} {
		lf := lostFile(t, m, orig) // checks user.mount-s3.original-path
		b, err := os.ReadFile(lf)
		require.NoError(t, err)
		require.Equal(t, mine, string(b), "the closed version of %s is in lost+found", orig)
		require.True(t, strings.HasPrefix(lf, lostFoundDir(t, m)))
	}
	require.True(t, assertEventually(func() bool { return strings.Contains(m.Logs(), "sync: conflict: /c/a.txt changed in the bucket") }),
		"the conflict is logged:\n%s", m.Logs())

	// Without conflicts, uploads go on as usual; no request carried a condition after the probe.
	require.NoError(t, os.WriteFile(m.Path("c/a.txt"), []byte("my next edit"), 0o644))
	flush(t, m)
	require.Equal(t, "my next edit", bucketObjects(t, store, "c/")["c/a.txt"])
	require.Equal(t, probed, strip.Stripped.Load(), "conditions are not sent to a store that ignores them")

	// The probe left nothing behind, and nothing in lost+found is uploaded.
	for k := range bucketObjects(t, store, "") {
		require.NotContains(t, k, probe.NamePrefix)
		require.False(t, strings.HasPrefix(k, syncrule.LostFoundDirPrefix), k)
	}
}
