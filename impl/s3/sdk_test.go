package s3_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/impl/s3/embedded"
	"github.com/mount-s3/mount-s3/impl/s3/s3test"
	"github.com/mount-s3/mount-s3/impl/s3/storetest"
)

const testBucket = "test-bucket"

// embeddedStore starts a fresh in-memory server per test, so tests that need an empty
// bucket (ListMultipartUploads) get one.
func embeddedStore(t *testing.T, dir string) (*s3.SDKStore, *embedded.Server) {
	t.Helper()
	srv, st := s3test.Embedded(t, s3test.Options{Server: embedded.Options{Dir: dir}, Bucket: testBucket, MaxAttempts: 3})
	return st, srv
}

func TestSDKStoreEmbedded(t *testing.T) {
	storetest.Run(t, func(t *testing.T) s3.Store {
		st, _ := embeddedStore(t, "")
		return st
	})
}

func TestSDKStoreEmbeddedPersistent(t *testing.T) {
	storetest.Run(t, func(t *testing.T) s3.Store {
		st, _ := embeddedStore(t, t.TempDir())
		return st
	})
}

// TestSDKStoreReal runs the suite against a real endpoint, e.g.
//
//	MOUNT_S3_TEST_ENDPOINT=https://s3.eu-west-1.amazonaws.com MOUNT_S3_TEST_BUCKET=b go test ./impl/s3/
//
// Credentials come from the usual AWS environment. Each test works under a unique prefix
// and deletes what it wrote.
func TestSDKStoreReal(t *testing.T) {
	st := storetest.External(t)
	storetest.RunQuirks(t, storetest.QuirksOf(os.Getenv("MOUNT_S3_TEST_STORE")), func(t *testing.T) s3.Store { return st })
}

func TestCheckBucket(t *testing.T) {
	st, srv := embeddedStore(t, "")
	require.NoError(t, st.CheckBucket(context.Background()))

	missing := s3test.StoreAt(t, srv.URL(), "no-such-bucket", 0)
	err := missing.CheckBucket(context.Background())
	require.True(t, errors.Is(err, s3.ErrNoSuchBucket), "got %v", err)
	require.Contains(t, err.Error(), "no-such-bucket")

	_, err = missing.Head(context.Background(), "k")
	require.Error(t, err)
	_, err = missing.List(context.Background(), s3.ListInput{})
	require.True(t, errors.Is(err, s3.ErrNoSuchBucket), "got %v", err)
}

func TestCheckBucketUnreachableFailsFast(t *testing.T) {
	// A port that was just free: connection refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())

	st := s3test.StoreAt(t, "http://"+addr, "b", 0)
	start := time.Now()
	err = st.CheckBucket(context.Background())
	require.Error(t, err)
	require.Contains(t, err.Error(), "cannot reach")
	require.Less(t, time.Since(start), 10*time.Second)
}

func TestNoSignRequest(t *testing.T) {
	st, err := s3.NewSDKStore(context.Background(), s3.Config{Bucket: "b", EndpointURL: "http://127.0.0.1:1", NoSignRequest: true})
	require.NoError(t, err)
	require.Equal(t, "b", st.Bucket())
}

// The decorators of a Store pass the suite as the store they wrap: Faults with no fault set,
// and Throttled (bandwidth and latency only delay).
func TestFaultsIsAStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) s3.Store {
		st, _ := embeddedStore(t, "")
		return s3.NewFaults(st)
	})
}

func TestThrottledIsAStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) s3.Store {
		st, _ := embeddedStore(t, "")
		return s3.NewThrottled(st, 1<<30, time.Millisecond)
	})
}

// recordingObserver keeps the attempts an SDKStore reports.
type recordingObserver struct {
	mu       sync.Mutex
	received map[string]int64
	sent     map[string]int64
}

func (o *recordingObserver) S3Attempt(op string, status int, d time.Duration, sent, received int64, retry bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.sent[op] += sent
	o.received[op] += received
}

// The bytes an attempt reports are its bodies': a HEAD's Content-Length is the object's size,
// with no body (a 1 GiB read once showed 1 GiB received by HeadObject).
func TestObservedBodyBytes(t *testing.T) {
	srv, err := embedded.Start(embedded.Options{Buckets: []string{testBucket}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Close() })
	obs := &recordingObserver{received: map[string]int64{}, sent: map[string]int64{}}
	st, err := s3.NewSDKStore(context.Background(), s3.Config{Bucket: testBucket, EndpointURL: srv.URL(),
		ForcePathStyle: true, StaticCredentials: embedded.Credentials, Observe: obs})
	require.NoError(t, err)
	ctx := context.Background()
	data := bytes.Repeat([]byte("x"), 100000)
	_, err = st.Put(ctx, "k", bytes.NewReader(data), int64(len(data)), s3.WriteOptions{})
	require.NoError(t, err)
	_, err = st.Head(ctx, "k")
	require.NoError(t, err)
	body, _, err := st.Get(ctx, "k", 10, 1000, "")
	require.NoError(t, err)
	io.Copy(io.Discard, body)
	body.Close()
	obs.mu.Lock()
	defer obs.mu.Unlock()
	require.EqualValues(t, len(data), obs.sent["PutObject"])
	require.Zero(t, obs.received["HeadObject"])
	require.EqualValues(t, 1000, obs.received["GetObject"])
}
