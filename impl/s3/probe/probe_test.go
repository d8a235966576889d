package probe_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/impl/s3/probe"
	"github.com/mount-s3/mount-s3/impl/s3/probe/probetest"
	"github.com/mount-s3/mount-s3/impl/s3/storetest"
	"github.com/mount-s3/mount-s3/spec/keymap"
)

func TestKeyIsHidden(t *testing.T) {
	for _, prefix := range []string{"", "a/", "a/b/", strings.Repeat("p", 700) + "/", strings.Repeat("q", 900) + "/"} {
		k, err := probe.Key(prefix)
		require.NoError(t, err, "prefix of %d bytes", len(prefix))
		require.True(t, strings.HasPrefix(k, prefix))
		require.LessOrEqual(t, len(k), probe.MaxKeyLen)
		require.Contains(t, k, probe.NamePrefix)
		require.False(t, keymap.Visible(prefix, k), "probe key %q is visible under %q", k, prefix)
		_, _, err = keymap.PathOfKey(prefix, k)
		require.ErrorIs(t, err, keymap.ErrHiddenKey)
		k2, err := probe.Key(prefix)
		require.NoError(t, err)
		require.NotEqual(t, k, k2, "two probes must not share a key")
	}
	_, err := probe.Key(strings.Repeat("r", 1020) + "/")
	require.Error(t, err, "no room for a hidden key")
}

func listAll(t *testing.T, store s3.Store) []string {
	t.Helper()
	page, err := store.List(context.Background(), s3.ListInput{Prefix: ""})
	require.NoError(t, err)
	var keys []string
	for _, o := range page.Objects {
		keys = append(keys, o.Key)
	}
	return keys
}

func TestProbeHonoured(t *testing.T) {
	_, store := probetest.StartServer(t, nil)
	for _, prefix := range []string{"", "mnt/"} {
		key, err := probe.Key(prefix)
		require.NoError(t, err)
		ok, err := probe.ProbeConditionalWrites(context.Background(), store, key)
		require.NoError(t, err)
		require.True(t, ok, "the embedded server honours conditions")
	}
	require.Empty(t, listAll(t, store), "the probe object is deleted")
}

func TestProbeIgnored(t *testing.T) {
	var strip probetest.StripConditions
	_, store := probetest.StartServer(t, strip.Middleware)
	key, err := probe.Key("mnt/")
	require.NoError(t, err)
	ok, err := probe.ProbeConditionalWrites(context.Background(), store, key)
	require.NoError(t, err)
	require.False(t, ok, "a store that drops the conditions ignores them")
	require.Positive(t, strip.Stripped.Load())
	require.Empty(t, listAll(t, store), "the probe object is deleted")
}

// alwaysPreconditionFailed refuses every conditional write, even one whose condition holds.
type alwaysPreconditionFailed struct{ s3.Store }

func (a alwaysPreconditionFailed) Put(ctx context.Context, key string, body io.ReadSeeker, size int64, opts s3.WriteOptions) (s3.ObjectInfo, error) {
	if opts.IfMatch != "" || opts.IfNoneMatch != "" {
		return s3.ObjectInfo{}, s3.ErrPreconditionFailed
	}
	return a.Store.Put(ctx, key, body, size, opts)
}

func TestProbeRefusesAll(t *testing.T) {
	_, store := probetest.StartServer(t, nil)
	ok, err := probe.ProbeConditionalWrites(context.Background(), alwaysPreconditionFailed{store}, "k")
	require.False(t, ok)
	require.ErrorIs(t, err, s3.ErrPreconditionFailed, "a store that refuses a condition that holds is not trusted")
	require.Empty(t, listAll(t, store))
}

// failing fails every call with err.
type failing struct {
	s3.Store
	err error
}

func (f failing) Put(context.Context, string, io.ReadSeeker, int64, s3.WriteOptions) (s3.ObjectInfo, error) {
	return s3.ObjectInfo{}, f.err
}

func TestProbeError(t *testing.T) {
	_, store := probetest.StartServer(t, nil)
	boom := errors.New("connection refused")
	ok, err := probe.ProbeConditionalWrites(context.Background(), failing{store, boom}, "k")
	require.False(t, ok)
	require.ErrorIs(t, err, boom)
}

// noDelete makes the cleanup fail.
type noDelete struct{ s3.Store }

func (noDelete) Delete(context.Context, string) error { return s3.ErrAccessDenied }

func TestProbeLeftBehind(t *testing.T) {
	_, store := probetest.StartServer(t, nil)
	key, err := probe.Key("")
	require.NoError(t, err)
	ok, err := probe.ProbeConditionalWrites(context.Background(), noDelete{store}, key)
	require.True(t, ok, "the verdict stands")
	require.ErrorIs(t, err, probe.ErrLeftBehind)
	require.Equal(t, []string{key}, listAll(t, store))
}

// A store that honours conditions on PUT but ignores them on a copy's source is not trusted
// either: renames rely on them.
func TestProbeIgnoredCopySourceCondition(t *testing.T) {
	stripCopySource := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r.Header.Del("X-Amz-Copy-Source-If-Match")
			next.ServeHTTP(w, r)
		})
	}
	_, store := probetest.StartServer(t, stripCopySource)
	key, err := probe.Key("")
	require.NoError(t, err)
	ok, err := probe.ProbeConditionalWrites(context.Background(), store, key)
	require.NoError(t, err)
	require.False(t, ok)
	require.Empty(t, listAll(t, store))
}

// On a store that refuses every hidden key name, as MinIO does, the probe still finds out
// that conditions are honoured, with a short-lived dot-file, and leaves nothing behind.
func TestProbeFileKeyRules(t *testing.T) {
	var rules probetest.FileKeyRules
	_, store := probetest.StartServer(t, rules.Middleware)
	for _, prefix := range []string{"", "mnt/", strings.Repeat(strings.Repeat("p", 200)+"/", 4)} {
		ok, key, err := probe.Probe(context.Background(), store, prefix)
		require.NoError(t, err, "prefix of %d bytes", len(prefix))
		require.True(t, ok, "the conditions are honoured")
		require.True(t, strings.HasPrefix(key, prefix+probe.NamePrefix), key)
		require.Empty(t, listAll(t, store), "the probe object is deleted")
	}
	require.Positive(t, rules.Refused.Load(), "the hidden key was tried first")

	var strip probetest.StripConditions
	both := func(next http.Handler) http.Handler { return rules.Middleware(strip.Middleware(next)) }
	_, ignoring := probetest.StartServer(t, both)
	ok, _, err := probe.Probe(context.Background(), ignoring, "mnt/")
	require.NoError(t, err)
	require.False(t, ok, "the fallback key still tells a store that ignores conditions")
	require.Empty(t, listAll(t, ignoring))
}

// Probe uses the hidden key wherever the store takes it.
func TestProbeHiddenKeyFirst(t *testing.T) {
	_, store := probetest.StartServer(t, nil)
	ok, key, err := probe.Probe(context.Background(), store, "mnt/")
	require.NoError(t, err)
	require.True(t, ok)
	require.False(t, keymap.Visible("mnt/", key), "key %q", key)
}

// TestProbeExternal probes the store at MOUNT_S3_TEST_ENDPOINT (MinIO in CI): a store that
// honours conditions must be found to, with no error and nothing left in the bucket.
func TestProbeExternal(t *testing.T) {
	store := storetest.External(t)
	prefix := fmt.Sprintf("probe-test-%d/", time.Now().UnixNano())
	ok, _, err := probe.Probe(context.Background(), store, prefix)
	require.NoError(t, err)
	require.True(t, ok, "%s honours conditional writes", os.Getenv("MOUNT_S3_TEST_ENDPOINT"))
	page, err := store.List(context.Background(), s3.ListInput{Prefix: prefix})
	require.NoError(t, err)
	require.Empty(t, page.Objects, "the probe object is deleted")
}
