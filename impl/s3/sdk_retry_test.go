package s3_test

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/impl/s3/embedded"
	"github.com/mount-s3/mount-s3/impl/s3/s3test"
)

// flaky answers the first n requests with status/code, then proxies to the embedded
// server.
func flaky(t *testing.T, n int32, status int, code string) (*s3.SDKStore, *atomic.Int32) {
	t.Helper()
	var calls atomic.Int32
	front := func(proxy *httputil.ReverseProxy) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if calls.Add(1) <= n {
				w.Header().Set("Content-Type", "application/xml")
				w.WriteHeader(status)
				_, _ = w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>` + code + `</Code><Message>x</Message></Error>`))
				return
			}
			proxy.ServeHTTP(w, r)
		})
	}
	_, st := s3test.Embedded(t, s3test.Options{Bucket: testBucket, MaxAttempts: 3, Front: front})
	return st, &calls
}

func TestRetriesSlowDownThenSucceeds(t *testing.T) {
	st, calls := flaky(t, 1, http.StatusServiceUnavailable, "SlowDown")
	_, err := st.List(context.Background(), s3.ListInput{})
	require.NoError(t, err)
	require.Equal(t, int32(2), calls.Load())
}

func TestRetries500ThenSucceeds(t *testing.T) {
	st, calls := flaky(t, 2, http.StatusInternalServerError, "InternalError")
	_, err := st.List(context.Background(), s3.ListInput{})
	require.NoError(t, err)
	require.Equal(t, int32(3), calls.Load())
}

func TestThrottledAfterRetries(t *testing.T) {
	st, calls := flaky(t, 1000, http.StatusServiceUnavailable, "SlowDown")
	_, err := st.Head(context.Background(), "some/key")
	require.True(t, errors.Is(err, s3.ErrThrottled), "got %v", err)
	require.Contains(t, err.Error(), "some/key")
	require.Equal(t, int32(3), calls.Load(), "MaxAttempts bounds the attempts")
}

func TestAccessDenied(t *testing.T) {
	st, _ := flaky(t, 1000, http.StatusForbidden, "AccessDenied")
	_, err := st.List(context.Background(), s3.ListInput{Prefix: "p/"})
	require.True(t, errors.Is(err, s3.ErrAccessDenied), "got %v", err)
	_, err = st.Head(context.Background(), "k") // HEAD: status only, no code
	require.True(t, errors.Is(err, s3.ErrAccessDenied), "got %v", err)
	err = st.CheckBucket(context.Background())
	require.True(t, errors.Is(err, s3.ErrAccessDenied), "got %v", err)
}

func TestCABundle(t *testing.T) {
	_, err := s3.NewSDKStore(context.Background(), s3.Config{Bucket: "b", CABundle: "/nonexistent/ca.pem"})
	require.Error(t, err)
	t.Setenv("AWS_CA_BUNDLE", "") // the explicit bundle alone
	pem := t.TempDir() + "/ca.pem"
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	defer srv.Close()
	require.NoError(t, writePEM(pem, srv))
	st, err := s3.NewSDKStore(context.Background(), s3.Config{
		Bucket: "b", EndpointURL: srv.URL, ForcePathStyle: true, CABundle: pem,
		StaticCredentials: embedded.Credentials, MaxAttempts: 1,
	})
	require.NoError(t, err)
	// The TLS handshake succeeds with the bundle, so the answer is the server's 404.
	_, err = st.Head(context.Background(), "k")
	require.True(t, errors.Is(err, s3.ErrNotFound), "got %v", err)
}

func writePEM(path string, srv *httptest.Server) error {
	block := &pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}
	return os.WriteFile(path, pem.EncodeToMemory(block), 0o600)
}

// A CreateMultipartUpload whose answer is lost (the store made the upload, then the
// connection was reset, or the answer's body was cut) is retried; the upload the first attempt
// made is aborted, so none is left open that nobody knows of.
func TestCreateMultipartLostAnswerLeavesNoUpload(t *testing.T) {
	for _, how := range []string{"reset", "cut body"} {
		t.Run(how, func(t *testing.T) {
			var lost atomic.Int32
			front := func(proxy *httputil.ReverseProxy) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if r.Method == http.MethodPost && r.URL.Query().Has("uploads") && lost.Add(1) == 1 {
						rec := httptest.NewRecorder()
						proxy.ServeHTTP(rec, r) // the store makes the upload...
						if how == "cut body" {
							w.Header().Set("Content-Length", fmt.Sprint(rec.Body.Len()))
							w.WriteHeader(rec.Code)
							w.Write(rec.Body.Bytes()[:rec.Body.Len()/2])
							w.(http.Flusher).Flush()
						}
						c, _, err := w.(http.Hijacker).Hijack()
						require.NoError(t, err)
						c.Close() // ...and its answer never arrives whole
						return
					}
					proxy.ServeHTTP(w, r)
				})
			}
			_, st := s3test.Embedded(t, s3test.Options{Bucket: testBucket, Front: front})
			id, err := st.CreateMultipart(context.Background(), "d/k", s3.WriteOptions{})
			require.NoError(t, err)
			require.Equal(t, int32(2), lost.Load(), "the first attempt's answer was lost and it was retried")
			ups, err := st.ListMultipartUploads(context.Background(), "")
			require.NoError(t, err)
			require.Len(t, ups, 1, "only the upload the caller knows of is open: %v", ups)
			require.Equal(t, id, ups[0].UploadID)
		})
	}
}

// An abort the store does not take (it is down) is retried in the background until it does,
// so no upload stays open (the fault campaign found uploads left open after an outage).
func TestAbortRetriedInTheBackground(t *testing.T) {
	var down atomic.Bool
	front := func(proxy *httputil.ReverseProxy) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if down.Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			proxy.ServeHTTP(w, r)
		})
	}
	_, st := s3test.Embedded(t, s3test.Options{Bucket: testBucket, MaxAttempts: 1, Front: front})
	id, err := st.CreateMultipart(context.Background(), "k", s3.WriteOptions{})
	require.NoError(t, err)
	down.Store(true)
	require.Error(t, st.AbortMultipart(context.Background(), "k", id), "the store is down")
	down.Store(false)
	require.Eventually(t, func() bool {
		ups, err := st.ListMultipartUploads(context.Background(), "")
		return err == nil && len(ups) == 0
	}, 10*time.Second, 100*time.Millisecond, "the abort was retried once the store was back")
}

// The sweep maps the create call's window into the store's clock through the listing's Date
// header. An answer held up on the way (a latency spike) arrives seconds after its Date; the
// window must still cover the call, or the stray upload is left open (the fault campaign
// found this with a stalled listing on MinIO).
func TestCreateMultipartSweepSurvivesASlowListing(t *testing.T) {
	var lost atomic.Int32
	front := func(proxy *httputil.ReverseProxy) http.Handler {
		proxy.ModifyResponse = func(resp *http.Response) error {
			if resp.Request.Method == http.MethodGet && resp.Request.URL.Query().Has("uploads") {
				time.Sleep(3 * time.Second) // the answer, Date and all, is held up
			}
			return nil
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost && r.URL.Query().Has("uploads") && lost.Add(1) == 1 {
				rec := httptest.NewRecorder()
				proxy.ServeHTTP(rec, r)
				c, _, err := w.(http.Hijacker).Hijack()
				require.NoError(t, err)
				c.Close()
				return
			}
			proxy.ServeHTTP(w, r)
		})
	}
	_, st := s3test.Embedded(t, s3test.Options{Bucket: testBucket, Front: front})
	id, err := st.CreateMultipart(context.Background(), "d/k", s3.WriteOptions{})
	require.NoError(t, err)
	ups, err := st.ListMultipartUploads(context.Background(), "")
	require.NoError(t, err)
	require.Len(t, ups, 1, "only the upload the caller knows of is open: %v", ups)
	require.Equal(t, id, ups[0].UploadID)
}
