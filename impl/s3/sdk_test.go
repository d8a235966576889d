package s3_test

import (
	"context"
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/impl/s3/embedded"
	"github.com/mount-s3/mount-s3/impl/s3/storetest"
)

const testBucket = "test-bucket"

// embeddedStore starts a fresh in-memory server per test, so tests that need an empty
// bucket (ListMultipartUploads) get one.
func embeddedStore(t *testing.T, dir string) (*s3.SDKStore, *embedded.Server) {
	t.Helper()
	srv, err := embedded.Start(embedded.Options{Dir: dir, Buckets: []string{testBucket}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Close() })
	st, err := s3.NewSDKStore(context.Background(), s3.Config{
		Bucket:            testBucket,
		EndpointURL:       srv.URL(),
		ForcePathStyle:    true,
		MaxAttempts:       3,
		StaticCredentials: embedded.Credentials,
	})
	require.NoError(t, err)
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

	missing, err := s3.NewSDKStore(context.Background(), s3.Config{Bucket: "no-such-bucket", EndpointURL: srv.URL(), ForcePathStyle: true, StaticCredentials: embedded.Credentials})
	require.NoError(t, err)
	err = missing.CheckBucket(context.Background())
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

	st, err := s3.NewSDKStore(context.Background(), s3.Config{Bucket: "b", EndpointURL: "http://" + addr, ForcePathStyle: true, StaticCredentials: embedded.Credentials})
	require.NoError(t, err)
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
