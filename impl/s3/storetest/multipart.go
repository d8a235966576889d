package storetest

import (
	"bytes"
	"crypto/rand"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/impl/s3"
)

const minPartSize = 5 << 20 // S3's minimum for every part but the last

func testMultipart(t *testing.T, c *Case) {
	for _, checksum := range []string{"", "crc32c"} {
		key := c.K("mpu-" + checksum)
		opts := s3.WriteOptions{Metadata: map[string]string{"mode": "0600"}, ContentType: "application/x-test", Checksum: checksum}
		id, err := c.S.CreateMultipart(ctx(t), key, opts)
		require.NoError(t, err)
		require.NotEmpty(t, id)

		part1 := bytes.Repeat([]byte("0123456789abcdef"), minPartSize/16)
		part2 := []byte("the short tail")
		p1, err := c.S.UploadPart(ctx(t), key, id, 1, part1, checksum)
		require.NoError(t, err)
		require.Equal(t, int32(1), p1.Number)
		require.NotEmpty(t, p1.ETag)
		p2, err := c.S.UploadPart(ctx(t), key, id, 2, part2, checksum)
		require.NoError(t, err)

		done, err := c.S.CompleteMultipart(ctx(t), key, id, []s3.CompletedPart{p1, p2}, opts)
		require.NoError(t, err)
		require.NotEmpty(t, done.ETag)

		head, err := c.S.Head(ctx(t), key)
		require.NoError(t, err)
		require.Equal(t, int64(len(part1)+len(part2)), head.Size)
		require.Equal(t, done.ETag, head.ETag, "the completed ETag is the one reads see (callers use it for If-Match)")
		require.Equal(t, map[string]string{"mode": "0600"}, head.Metadata)
		require.Equal(t, "application/x-test", head.ContentType)

		rc, _, err := c.S.Get(ctx(t), key, 0, -1, done.ETag)
		require.NoError(t, err)
		var got bytes.Buffer
		_, err = got.ReadFrom(rc)
		require.NoError(t, rc.Close())
		require.NoError(t, err)
		require.True(t, bytes.Equal(append(part1, part2...), got.Bytes()), "content is the concatenation of the parts")

		ups, err := c.S.ListMultipartUploads(ctx(t), c.uploadsPrefix(key))
		require.NoError(t, err)
		require.Empty(t, ups, "a completed upload is no longer listed")
	}
}

func testMultipartAbort(t *testing.T, c *Case) {
	key := c.K("aborted")
	id, err := c.S.CreateMultipart(ctx(t), key, s3.WriteOptions{})
	require.NoError(t, err)
	_, err = c.S.UploadPart(ctx(t), key, id, 1, []byte("some data"), "")
	require.NoError(t, err)

	ups, err := c.S.ListMultipartUploads(ctx(t), c.uploadsPrefix(key))
	require.NoError(t, err)
	require.Len(t, ups, 1)
	require.Equal(t, key, ups[0].Key)
	require.Equal(t, id, ups[0].UploadID)

	require.NoError(t, c.S.AbortMultipart(ctx(t), key, id))
	ups, err = c.S.ListMultipartUploads(ctx(t), c.uploadsPrefix(key))
	require.NoError(t, err)
	require.Empty(t, ups)
	require.NoError(t, c.S.AbortMultipart(ctx(t), key, id), "aborting an unknown upload is not an error")

	_, err = c.S.Head(ctx(t), key)
	RequireErr(t, err, s3.ErrNotFound, key)
	_, err = c.S.UploadPart(ctx(t), key, id, 2, []byte("late"), "")
	RequireErr(t, err, s3.ErrNotFound, key)
}

func testListUploadsEmpty(t *testing.T, c *Case) {
	ups, err := c.S.ListMultipartUploads(ctx(t), c.Prefix)
	require.NoError(t, err)
	require.Empty(t, ups)
	ups, err = c.S.ListMultipartUploads(ctx(t), "")
	require.NoError(t, err, "listing a whole bucket's uploads")
	_ = ups // a shared bucket may have others' uploads
}

// testUploadPartCopy assembles an object from ranges of another object (server-side part
// copies) and an uploaded part, and checks the bytes, the metadata (the upload's, not the
// source's) and the source condition.
func testUploadPartCopy(t *testing.T, c *Case) {
	src := make([]byte, minPartSize+1000)
	_, _ = rand.Read(src)
	srcInfo := c.Put("src +%&=é", src, s3.WriteOptions{Metadata: map[string]string{"from": "src"}})
	checksums := []string{"", "crc32c"}
	if c.Quirks.NoPartCopyWithChecksum {
		checksums = checksums[:1]
	}
	for _, checksum := range checksums {
		key := c.K("assembled-" + checksum)
		opts := s3.WriteOptions{Metadata: map[string]string{"mode": "0644"}, ContentType: "application/x-dst", Checksum: checksum}
		id, err := c.S.CreateMultipart(ctx(t), key, opts)
		require.NoError(t, err)

		p1, err := c.S.UploadPartCopy(ctx(t), key, id, 1, c.K("src +%&=é"), 0, minPartSize-1, srcInfo.ETag)
		require.NoError(t, err)
		require.Equal(t, int32(1), p1.Number)
		require.NotEmpty(t, p1.ETag)
		middle := bytes.Repeat([]byte("uploaded"), minPartSize/8)
		p2, err := c.S.UploadPart(ctx(t), key, id, 2, middle, checksum)
		require.NoError(t, err)
		// The last part crosses where the first ended, and needs no condition.
		p3, err := c.S.UploadPartCopy(ctx(t), key, id, 3, c.K("src +%&=é"), minPartSize-10, int64(len(src))-1, "")
		require.NoError(t, err)
		require.Equal(t, int32(3), p3.Number)

		done, err := c.S.CompleteMultipart(ctx(t), key, id, []s3.CompletedPart{p1, p2, p3}, opts)
		require.NoError(t, err)
		head, err := c.S.Head(ctx(t), key)
		require.NoError(t, err)
		require.Equal(t, done.ETag, head.ETag)
		require.Equal(t, map[string]string{"mode": "0644"}, head.Metadata, "a part copy carries no metadata")
		require.Equal(t, "application/x-dst", head.ContentType)
		want := append(append(append([]byte{}, src[:minPartSize]...), middle...), src[minPartSize-10:]...)
		got := c.MustRead("assembled-"+checksum, 0, -1)
		require.Equal(t, len(want), len(got))
		require.True(t, bytes.Equal(want, got), "content is the copied ranges and the uploaded part, in order")
	}

	// The source condition.
	key := c.K("conditional")
	id, err := c.S.CreateMultipart(ctx(t), key, s3.WriteOptions{})
	require.NoError(t, err)
	_, err = c.S.UploadPartCopy(ctx(t), key, id, 1, c.K("src +%&=é"), 0, 99, `"00000000000000000000000000000000"`)
	RequireErr(t, err, s3.ErrPreconditionFailed, key)
	c.Put("src +%&=é", []byte("a new version"), s3.WriteOptions{})
	_, err = c.S.UploadPartCopy(ctx(t), key, id, 1, c.K("src +%&=é"), 0, 5, srcInfo.ETag)
	RequireErr(t, err, s3.ErrPreconditionFailed, key)
	_, err = c.S.UploadPartCopy(ctx(t), key, id, 1, c.K("missing"), 0, 5, "")
	RequireErr(t, err, s3.ErrNotFound, key)
	require.NoError(t, c.S.AbortMultipart(ctx(t), key, id))
	_, err = c.S.UploadPartCopy(ctx(t), key, id, 1, c.K("src +%&=é"), 0, 5, "")
	RequireErr(t, err, s3.ErrNotFound, key)
}
