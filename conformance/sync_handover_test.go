package conformance

import (
	"context"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/conformance/harness"
	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/impl/s3/embedded"
)

// A sync dir unmounted while its write-back is still running can be mounted again at once: the
// new mount waits for the old process, says so, and starts when it is done; nothing is lost
// (issue 15: it failed with "locked by process N; stop that mount first").
func TestSyncRemountWhileWritingBack(t *testing.T) {
	var slow atomic.Bool
	srv, err := embedded.Start(embedded.Options{Buckets: []string{harness.Bucket}, Middleware: func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if slow.Load() && r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/slow.txt") {
				time.Sleep(3 * time.Second)
			}
			next.ServeHTTP(w, r)
		})
	}})
	require.NoError(t, err)
	t.Cleanup(func() { srv.Close() })
	store, err := s3.NewSDKStore(context.Background(), s3.Config{Bucket: harness.Bucket, EndpointURL: srv.URL(),
		ForcePathStyle: true, StaticCredentials: embedded.Credentials})
	require.NoError(t, err)

	syncDir := t.TempDir()
	first := syncMount(t, srv, store, syncDir)
	require.NoError(t, os.WriteFile(first.Path("slow.txt"), []byte("written before the unmount"), 0o644))
	slow.Store(true)
	require.NoError(t, syscall.Unmount(first.Dir, 0))

	second := syncMount(t, srv, store, syncDir)
	// The first process gives the sync dir up once its write-back is done and exits just after
	// (a final log line), so its exit may be seen a moment after the second mount is up; what
	// must hold is that the hand-over came after the write-back.
	_, err = store.Head(context.Background(), "slow.txt")
	require.NoError(t, err, "the second mount started before the first finished writing back")
	require.True(t, first.Exited(10*time.Second), "the first process did not end after handing over")
	require.Contains(t, second.Logs(), "waiting for process", "the wait is said")
	b, err := os.ReadFile(second.Path("slow.txt"))
	require.NoError(t, err)
	require.Equal(t, "written before the unmount", string(b))
}
