package conformance

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/conformance/harness"
	"github.com/mount-s3/mount-s3/impl/s3"
)

// slowPuts is an endpoint in front of another that holds every PUT for delay: uploads then
// lag behind the closes that start them, as on a real network.
type slowPuts struct{ srv *httptest.Server }

func (s slowPuts) URL() string { return s.srv.URL }

func newSlowPuts(t *testing.T, to harness.Endpoint, delay time.Duration) slowPuts {
	u, err := url.Parse(to.URL())
	require.NoError(t, err)
	proxy := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			time.Sleep(delay)
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return slowPuts{srv}
}

// TestUnmountRightAfterEmptyCloses: an empty file is committed at its release, which the
// kernel sends after close(2) returns and drops if it has not sent it when the mount goes
// away. `touch` or `: > f` of many files then an unmount must still leave every file in the
// bucket.
func TestUnmountRightAfterEmptyCloses(t *testing.T) {
	srv, store := harness.NewServer(t)
	// The kernel keeps a few releases in flight (its background limit) and queues the rest:
	// at 200 ms a PUT they drain at about 60 a second, slower than the files below are made
	// even on a fast machine, so the unmount finds releases still queued. At 20 ms they kept
	// up on a machine whose creates were slower, and the test missed its case.
	m := harness.MountServer(t, newSlowPuts(t, srv, 200*time.Millisecond), store, harness.Options{Prefix: "empty/"})
	const n = 100
	for i := range n {
		f, err := os.OpenFile(m.Path(fmt.Sprintf("f%03d", i)), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
		require.NoError(t, err)
		require.NoError(t, f.Close())
	}
	m.Unmount(t)
	page, err := store.List(context.Background(), s3.ListInput{Prefix: "empty/"})
	require.NoError(t, err)
	require.Len(t, page.Objects, n, "every file closed before the unmount is in the bucket")
	require.Contains(t, m.Logs(), "committed the files closed empty whose release the unmount dropped",
		"the unmount did drop releases: the test reached the case it is for")
}
