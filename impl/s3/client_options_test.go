package s3_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/impl/s3/embedded"
)

// Mountpoint's client flags reach every request: the user-agent prefix first in User-Agent,
// the requester-pays and expected-owner headers on reads, writes, listings and multipart
// calls alike; --debug-crt logs each attempt without the credentials.
func TestClientOptionsReachEveryRequest(t *testing.T) {
	var mu sync.Mutex
	var seen []http.Header
	srv, err := embedded.Start(embedded.Options{Buckets: []string{testBucket}, Middleware: func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			seen = append(seen, r.Header.Clone())
			mu.Unlock()
			next.ServeHTTP(w, r)
		})
	}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Close() })
	var logs bytes.Buffer
	var logMu sync.Mutex
	st, err := s3.NewSDKStore(context.Background(), s3.Config{
		Bucket: testBucket, EndpointURL: srv.URL(), ForcePathStyle: true, StaticCredentials: embedded.Credentials,
		UserAgentPrefix: "csi-driver/1.2", RequesterPays: true, ExpectedBucketOwner: "111122223333",
		RequestLog: slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logs}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, st.CheckBucket(ctx))
	_, err = st.Put(ctx, "a", strings.NewReader("x"), 1, s3.WriteOptions{})
	require.NoError(t, err)
	_, err = st.Head(ctx, "a")
	require.NoError(t, err)
	_, err = st.List(ctx, s3.ListInput{})
	require.NoError(t, err)
	id, err := st.CreateMultipart(ctx, "m", s3.WriteOptions{})
	require.NoError(t, err)
	require.NoError(t, st.AbortMultipart(ctx, "m", id))

	mu.Lock()
	defer mu.Unlock()
	require.GreaterOrEqual(t, len(seen), 6)
	for i, h := range seen {
		require.True(t, strings.HasPrefix(h.Get("User-Agent"), "csi-driver/1.2 "), "request %d: User-Agent %q", i, h.Get("User-Agent"))
		require.Equal(t, "requester", h.Get("X-Amz-Request-Payer"), "request %d", i)
		require.Equal(t, "111122223333", h.Get("X-Amz-Expected-Bucket-Owner"), "request %d", i)
		require.Contains(t, h.Get("Authorization"), "x-amz-expected-bucket-owner", "request %d: the headers are signed", i)
	}
	logMu.Lock()
	out := logs.String()
	logMu.Unlock()
	require.Contains(t, out, "operation=PutObject")
	require.Contains(t, out, "status=200")
	require.NotContains(t, out, embedded.Credentials.AccessKeyID, "the request log names no credential")
	require.NotContains(t, out, embedded.Credentials.SecretAccessKey)
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestBindToUnknownInterfaceFails(t *testing.T) {
	_, err := s3.NewSDKStore(context.Background(), s3.Config{Bucket: testBucket, EndpointURL: "http://127.0.0.1:1",
		ForcePathStyle: true, StaticCredentials: embedded.Credentials, BindInterfaces: []string{"nosuchif0"}})
	require.ErrorContains(t, err, "--bind nosuchif0: no such network interface")
}

// Binding to the loopback interface still reaches a loopback server (root or Linux 5.7+).
func TestBindToLoopback(t *testing.T) {
	srv, err := embedded.Start(embedded.Options{Buckets: []string{testBucket}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Close() })
	bound, err := s3.NewSDKStore(context.Background(), s3.Config{Bucket: testBucket, EndpointURL: srv.URL(),
		ForcePathStyle: true, StaticCredentials: embedded.Credentials, BindInterfaces: []string{"lo"}, MaxAttempts: 1})
	require.NoError(t, err)
	if err := bound.CheckBucket(context.Background()); err != nil {
		if strings.Contains(err.Error(), "operation not permitted") {
			t.Skip("SO_BINDTODEVICE needs CAP_NET_RAW or Linux 5.7+: ", err)
		}
		require.NoError(t, err)
	}
}
