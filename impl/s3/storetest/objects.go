package storetest

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/impl/s3"
)

func testPutHeadGet(t *testing.T, c *Case) {
	data := []byte("hello, world\n")
	before := time.Now()
	put := c.Put("obj", data, s3.WriteOptions{
		Metadata:    map[string]string{"mode": "0644", "Owner-Name": "Ann"},
		ContentType: "text/plain",
	})

	head, err := c.S.Head(ctx(t), c.K("obj"))
	require.NoError(t, err)
	require.Equal(t, c.K("obj"), head.Key)
	require.Equal(t, int64(len(data)), head.Size)
	require.Equal(t, put.ETag, head.ETag)
	require.Equal(t, map[string]string{"mode": "0644", "owner-name": "Ann"}, head.Metadata, "metadata names must come back lower-case")
	require.Equal(t, "text/plain", head.ContentType)
	// Clocks differ between us and the store; an hour either way still catches a zero
	// or garbage Last-Modified.
	require.WithinDuration(t, before, head.LastModified, time.Hour)

	got, info, err := c.Read("obj", 0, -1, "")
	require.NoError(t, err)
	require.Equal(t, data, got)
	require.Equal(t, put.ETag, info.ETag)
	require.Equal(t, int64(len(data)), info.Size)
	require.Equal(t, head.Metadata, info.Metadata)
	require.WithinDuration(t, before, info.LastModified, time.Hour)
}

func testOverwriteReplacesMetadata(t *testing.T, c *Case) {
	c.Put("obj", []byte("v1"), s3.WriteOptions{Metadata: map[string]string{"a": "1", "b": "1"}})
	c.Put("obj", []byte("v2"), s3.WriteOptions{Metadata: map[string]string{"b": "2"}})
	head, err := c.S.Head(ctx(t), c.K("obj"))
	require.NoError(t, err)
	require.Equal(t, map[string]string{"b": "2"}, head.Metadata, "a write replaces all user metadata")
	c.Put("obj", []byte("v3"), s3.WriteOptions{})
	head, err = c.S.Head(ctx(t), c.K("obj"))
	require.NoError(t, err)
	require.Empty(t, head.Metadata)
}

func testGetRanges(t *testing.T, c *Case) {
	c.Put("obj", []byte("0123456789"), s3.WriteOptions{})
	for _, tc := range []struct {
		off, n int64
		want   string
	}{
		{0, 1, "0"}, {9, 1, "9"}, {9, -1, "9"}, {3, -1, "3456789"}, {0, 10, "0123456789"},
		{5, 100, "56789"}, {8, 5, "89"}, {4, 2, "45"}, {2, 0, ""},
	} {
		got, info, err := c.Read("obj", tc.off, tc.n, "")
		require.NoError(t, err, "range [%d,+%d)", tc.off, tc.n)
		require.Equal(t, tc.want, string(got), "range [%d,+%d)", tc.off, tc.n)
		require.Equal(t, int64(10), info.Size, "Size is the whole object's for range [%d,+%d)", tc.off, tc.n)
		require.NotEmpty(t, info.ETag)
	}
	for _, off := range []int64{10, 11, 1000} {
		_, _, err := c.Read("obj", off, 1, "")
		RequireErr(t, err, s3.ErrInvalidRange, c.K("obj"))
		_, _, err = c.Read("obj", off, -1, "")
		RequireErr(t, err, s3.ErrInvalidRange, c.K("obj"))
	}
}

func testEmptyObject(t *testing.T, c *Case) {
	c.Put("empty", nil, s3.WriteOptions{})
	head, err := c.S.Head(ctx(t), c.K("empty"))
	require.NoError(t, err)
	require.Zero(t, head.Size)
	for _, n := range []int64{-1, 0, 1, 4096} {
		got, info, err := c.Read("empty", 0, n, "")
		require.NoError(t, err, "empty object, length %d", n)
		require.Empty(t, got)
		require.Zero(t, info.Size)
		require.Equal(t, head.ETag, info.ETag)
	}
	_, _, err = c.Read("empty", 0, -1, head.ETag)
	require.NoError(t, err, "empty object with the right ifMatch")
}

func testNotFound(t *testing.T, c *Case) {
	_, err := c.S.Head(ctx(t), c.K("missing"))
	RequireErr(t, err, s3.ErrNotFound, c.K("missing"))
	_, _, err = c.Read("missing", 0, -1, "")
	RequireErr(t, err, s3.ErrNotFound, c.K("missing"))
	_, _, err = c.Read("missing", 5, 10, "")
	RequireErr(t, err, s3.ErrNotFound, c.K("missing"))
	require.NoError(t, c.S.Delete(ctx(t), c.K("missing")), "deleting a missing key is not an error")

	c.Put("gone", []byte("x"), s3.WriteOptions{})
	require.NoError(t, c.S.Delete(ctx(t), c.K("gone")))
	_, err = c.S.Head(ctx(t), c.K("gone"))
	RequireErr(t, err, s3.ErrNotFound, c.K("gone"))
}

func testCopy(t *testing.T, c *Case) {
	data := bytes.Repeat([]byte("copy me "), 1000)
	src := "src +%&=?#é"
	c.Put(src, data, s3.WriteOptions{Metadata: map[string]string{"a": "1", "b": "1"}, ContentType: "text/x-src"})

	info, err := c.S.Copy(ctx(t), c.K(src), c.K("dst-copied"), s3.WriteOptions{})
	require.NoError(t, err)
	require.NotEmpty(t, info.ETag)
	head, err := c.S.Head(ctx(t), c.K("dst-copied"))
	require.NoError(t, err)
	require.Equal(t, map[string]string{"a": "1", "b": "1"}, head.Metadata)
	require.Equal(t, "text/x-src", head.ContentType)
	require.Equal(t, info.ETag, head.ETag)
	require.Equal(t, data, c.MustRead("dst-copied", 0, -1))

	_, err = c.S.Copy(ctx(t), c.K(src), c.K("dst-replaced"), s3.WriteOptions{Metadata: map[string]string{"b": "2"}, ContentType: "text/x-dst"})
	require.NoError(t, err)
	head, err = c.S.Head(ctx(t), c.K("dst-replaced"))
	require.NoError(t, err)
	require.Equal(t, map[string]string{"b": "2"}, head.Metadata, "replaced metadata must not keep the source's other keys")
	require.Equal(t, "text/x-dst", head.ContentType)
	require.Equal(t, data, c.MustRead("dst-replaced", 0, -1))

	_, err = c.S.Copy(ctx(t), c.K("missing"), c.K("dst-missing"), s3.WriteOptions{})
	RequireErr(t, err, s3.ErrNotFound, "")

	// The source condition.
	srcInfo, err := c.S.Head(ctx(t), c.K(src))
	require.NoError(t, err)
	_, err = c.S.Copy(ctx(t), c.K(src), c.K("dst-if-match"), s3.WriteOptions{SourceIfMatch: srcInfo.ETag})
	require.NoError(t, err)
	_, err = c.S.Copy(ctx(t), c.K(src), c.K("dst-if-mismatch"), s3.WriteOptions{SourceIfMatch: `"00000000000000000000000000000000"`})
	RequireErr(t, err, s3.ErrPreconditionFailed, "")
	_, err = c.S.Head(ctx(t), c.K("dst-if-mismatch"))
	RequireErr(t, err, s3.ErrNotFound, "")
}

func testConditionalPut(t *testing.T, c *Case) {
	v1 := c.Put("obj", []byte("v1"), s3.WriteOptions{})
	put := func(data string, opts s3.WriteOptions) (s3.ObjectInfo, error) {
		return c.S.Put(ctx(t), c.K("obj"), bytes.NewReader([]byte(data)), int64(len(data)), opts)
	}
	_, err := put("x", s3.WriteOptions{IfNoneMatch: "*"})
	RequireErr(t, err, s3.ErrPreconditionFailed, c.K("obj"))
	_, err = put("x", s3.WriteOptions{IfMatch: `"00000000000000000000000000000000"`})
	RequireErr(t, err, s3.ErrPreconditionFailed, c.K("obj"))
	require.Equal(t, "v1", string(c.MustRead("obj", 0, -1)), "a failed conditional write changes nothing")

	v2, err := put("v2", s3.WriteOptions{IfMatch: v1.ETag})
	require.NoError(t, err)
	require.NotEqual(t, v1.ETag, v2.ETag)
	_, err = put("v3", s3.WriteOptions{IfMatch: v1.ETag})
	RequireErr(t, err, s3.ErrPreconditionFailed, c.K("obj"))
	require.Equal(t, "v2", string(c.MustRead("obj", 0, -1)))

	_, err = c.S.Put(ctx(t), c.K("new"), bytes.NewReader([]byte("n")), 1, s3.WriteOptions{IfNoneMatch: "*"})
	require.NoError(t, err, "If-None-Match * on a new key")
}

func testGetIfMatch(t *testing.T, c *Case) {
	v1 := c.Put("obj", []byte("version one"), s3.WriteOptions{})
	_, _, err := c.Read("obj", 0, -1, v1.ETag)
	require.NoError(t, err)
	v2 := c.Put("obj", []byte("version two"), s3.WriteOptions{})
	for _, r := range [][2]int64{{0, -1}, {3, 4}, {8, -1}} {
		got, _, err := c.Read("obj", r[0], r[1], v1.ETag)
		if c.Quirks.KeepsVersions && err == nil {
			end := int64(len("version one"))
			if r[1] >= 0 {
				end = r[0] + r[1]
			}
			require.Equal(t, "version one"[r[0]:end], string(got), "a read of the old version served its bytes")
			continue
		}
		RequireErr(t, err, s3.ErrPreconditionFailed, c.K("obj"))
	}
	got, info, err := c.Read("obj", 8, -1, v2.ETag)
	require.NoError(t, err)
	require.Equal(t, "two", string(got))
	require.Equal(t, v2.ETag, info.ETag)
}

func testChecksum(t *testing.T, c *Case) {
	data := []byte("checksummed payload")
	c.Put("obj", data, s3.WriteOptions{Checksum: "crc32c"})
	require.Equal(t, data, c.MustRead("obj", 0, -1))
}

func testOddKeys(t *testing.T, c *Case) {
	names := []string{
		"with space", `back\slash`, "plus+sign", "percent%20literal", "percent%", "unicodé/日本語",
		"query?x=1&y=2#frag", "tilde~", "quote\"'", "a//double", "trailing.", "emoji-🙂", "semi;colon:",
	}
	if c.Quirks.FileKeyNames {
		names = slices.DeleteFunc(names, func(n string) bool { return n == "a//double" })
		for _, refused := range []string{"a//double", "dot/./x", strings.Repeat("n", 256)} {
			_, err := c.S.Put(ctx(t), c.K(refused), bytes.NewReader(nil), 0, s3.WriteOptions{})
			RequireErr(t, err, s3.ErrInvalidKey, c.K(refused))
		}
	}
	for _, n := range names {
		c.Put(n, []byte("body of "+n), s3.WriteOptions{})
	}
	for _, n := range names {
		head, err := c.S.Head(ctx(t), c.K(n))
		require.NoError(t, err, "head %q", n)
		require.Equal(t, c.K(n), head.Key)
		require.Equal(t, "body of "+n, string(c.MustRead(n, 0, -1)), "get %q", n)
	}
	objects, _, _ := c.ListAll(s3.ListInput{Prefix: c.Prefix})
	require.ElementsMatch(t, names, objects)
	for _, n := range names {
		_, err := c.S.Copy(ctx(t), c.K(n), c.K("copied/"+n), s3.WriteOptions{})
		require.NoError(t, err, "copy %q", n)
		require.Equal(t, "body of "+n, string(c.MustRead("copied/"+n, 0, -1)), "copy of %q", n)
		require.NoError(t, c.S.Delete(ctx(t), c.K(n)))
		_, err = c.S.Head(ctx(t), c.K(n))
		RequireErr(t, err, s3.ErrNotFound, "")
	}
}

func testCanceled(t *testing.T, c *Case) {
	cctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.S.Head(cctx, c.K("obj"))
	require.True(t, errors.Is(err, context.Canceled), "got %v", err)
	_, err = c.S.List(cctx, s3.ListInput{Prefix: c.Prefix})
	require.True(t, errors.Is(err, context.Canceled), "got %v", err)
}
