package s3_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/impl/s3"
)

const mib = 1 << 20

func putRandom(t *testing.T, st s3.Store, key string, size int, opts s3.WriteOptions) ([]byte, s3.ObjectInfo) {
	t.Helper()
	data := make([]byte, size)
	_, _ = rand.Read(data)
	_, err := st.Put(context.Background(), key, bytes.NewReader(data), int64(size), opts)
	require.NoError(t, err)
	head, err := st.Head(context.Background(), key)
	require.NoError(t, err)
	return data, head
}

func readAll(t *testing.T, st s3.Store, key string) []byte {
	t.Helper()
	rc, _, err := st.Get(context.Background(), key, 0, -1, "")
	require.NoError(t, err)
	defer rc.Close()
	b, err := io.ReadAll(rc)
	require.NoError(t, err)
	return b
}

func TestCopyLargeMultipart(t *testing.T) {
	inner, _ := embeddedStore(t, "")
	st := s3.NewFaults(inner)
	ctx := context.Background()
	cfg := s3.CopyConfig{Threshold: 6 * mib, PartSize: 5 * mib, Concurrency: 2}
	data, src := putRandom(t, st, "big", 13*mib, s3.WriteOptions{Metadata: map[string]string{"mode": "0600"}, ContentType: "text/x-big"})

	// Keeping the source's metadata.
	info, err := s3.CopyLarge(ctx, st, src, "moved", s3.WriteOptions{}, cfg)
	require.NoError(t, err)
	require.Equal(t, int64(13*mib), info.Size)
	require.Equal(t, 3, st.Calls("UploadPartCopy"), "13 MiB in 5 MiB parts")
	require.Equal(t, 0, st.Calls("Copy"))
	head, err := st.Head(ctx, "moved")
	require.NoError(t, err)
	require.Equal(t, info.ETag, head.ETag)
	require.Equal(t, map[string]string{"mode": "0600"}, head.Metadata)
	require.Equal(t, "text/x-big", head.ContentType)
	require.True(t, bytes.Equal(data, readAll(t, st, "moved")))

	// Onto itself with new metadata, conditional on the destination (= the source).
	_, err = s3.CopyLarge(ctx, st, src, "big", s3.WriteOptions{Metadata: map[string]string{"mode": "0644"}, IfMatch: src.ETag}, cfg)
	require.NoError(t, err)
	head, err = st.Head(ctx, "big")
	require.NoError(t, err)
	require.Equal(t, map[string]string{"mode": "0644"}, head.Metadata)
	require.True(t, bytes.Equal(data, readAll(t, st, "big")))

	// Small sources take one CopyObject.
	small, smallInfo := putRandom(t, st, "small", 100, s3.WriteOptions{})
	_, err = s3.CopyLarge(ctx, st, smallInfo, "small2", s3.WriteOptions{}, cfg)
	require.NoError(t, err)
	require.Equal(t, 1, st.Calls("Copy"))
	require.Equal(t, small, readAll(t, st, "small2"))

	ups, err := st.ListMultipartUploads(ctx, "")
	require.NoError(t, err)
	require.Empty(t, ups)
}

func TestCopyLargeFailures(t *testing.T) {
	inner, _ := embeddedStore(t, "")
	st := s3.NewFaults(inner)
	ctx := context.Background()
	cfg := s3.CopyConfig{Threshold: 6 * mib, PartSize: 5 * mib, Concurrency: 1}
	data, src := putRandom(t, st, "big", 13*mib, s3.WriteOptions{})

	noTrace := func(key string) {
		t.Helper()
		_, err := st.Head(ctx, key)
		require.ErrorIs(t, err, s3.ErrNotFound)
		ups, err := st.ListMultipartUploads(ctx, "")
		require.NoError(t, err)
		require.Empty(t, ups, "a failed copy aborts its upload")
	}

	// A part fails.
	st.FailNth("UploadPartCopy", 2, nil)
	_, err := s3.CopyLarge(ctx, st, src, "dst", s3.WriteOptions{}, cfg)
	require.ErrorIs(t, err, s3.ErrInjected)
	noTrace("dst")
	st.Clear()

	// The completion fails.
	st.FailNth("CompleteMultipart", 1, nil)
	_, err = s3.CopyLarge(ctx, st, src, "dst", s3.WriteOptions{}, cfg)
	require.ErrorIs(t, err, s3.ErrInjected)
	noTrace("dst")
	st.Clear()

	// The source changes after the HEAD the caller made: nothing is copied, nothing mixed.
	_, err = st.Put(ctx, "big", bytes.NewReader(data[:7*mib]), 7*mib, s3.WriteOptions{})
	require.NoError(t, err)
	_, err = s3.CopyLarge(ctx, st, src, "dst", s3.WriteOptions{}, cfg)
	require.ErrorIs(t, err, s3.ErrPreconditionFailed)
	noTrace("dst")

	// Same for the plain copy.
	small := src
	small.Size = 10
	_, err = s3.CopyLarge(ctx, st, small, "dst", s3.WriteOptions{}, cfg)
	require.ErrorIs(t, err, s3.ErrPreconditionFailed)
	noTrace("dst")

	// The source changes between two parts.
	_, src = putRandom(t, inner, "big", 13*mib, s3.WriteOptions{})
	changer := &changeAfterFirstPart{Faults: st, inner: inner}
	_, err = s3.CopyLarge(ctx, changer, src, "dst", s3.WriteOptions{}, cfg)
	require.ErrorIs(t, err, s3.ErrPreconditionFailed)
	noTrace("dst")
}

// changeAfterFirstPart overwrites the source once the first part has been copied.
type changeAfterFirstPart struct {
	*s3.Faults
	inner s3.Store
	done  bool
}

func (c *changeAfterFirstPart) UploadPartCopy(ctx context.Context, key, uploadID string, number int32, src string, first, last int64, srcIfMatch string) (s3.CompletedPart, error) {
	p, err := c.Faults.UploadPartCopy(ctx, key, uploadID, number, src, first, last, srcIfMatch)
	if err == nil && !c.done {
		c.done = true
		_, perr := c.inner.Put(ctx, src, bytes.NewReader([]byte("changed")), 7, s3.WriteOptions{})
		if perr != nil {
			return p, perr
		}
	}
	return p, err
}

func TestCopyPartSize(t *testing.T) {
	require.Equal(t, s3.DefaultCopyPartSize, s3.CopyPartSize(6<<30, 0))
	require.Equal(t, int64(5*mib), s3.CopyPartSize(13*mib, 1))
	// 5 TiB in at most 10,000 parts.
	size := int64(5) << 40
	ps := s3.CopyPartSize(size, 0)
	require.LessOrEqual(t, (size+ps-1)/ps, int64(s3.MaxParts))
	require.LessOrEqual(t, ps, s3.MaxPartSize)
}
