package storetest

import (
	"bytes"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/impl/s3"
)

// listKeys are in byte order. They include the case file systems trip over: "a-" and
// "a-/z" sort before "a/..." because '-' (0x2d) < '/' (0x2f), so in a delimited listing
// the directory "a-/" comes before the directory "a/", and "a0" after it.
var listKeys = []string{"a", "a-", "a-/z", "a/b", "a/c/d", "a/c/e", "a0", "b", "b/"}

// shadowing are the list keys that are also a directory of other list keys.
var shadowing = map[string]bool{"a": true, "a-": true, "b": true}

// only drops, on a store where an object hides the keys below it (Quirks.ObjectShadowsPrefix),
// the objects that would, from the keys put and from what a listing should return.
func (c *Case) only(names []string) []string {
	if !c.Quirks.ObjectShadowsPrefix {
		return names
	}
	var out []string
	for _, n := range names {
		if !shadowing[n] {
			out = append(out, n)
		}
	}
	return out
}

func putListKeys(c *Case) {
	for _, k := range c.only(listKeys) {
		c.Put(k, []byte(k), s3.WriteOptions{})
	}
}

func testListOrderAndDelimiter(t *testing.T, c *Case) {
	putListKeys(c)

	objects, prefixes, _ := c.ListAll(s3.ListInput{Prefix: c.Prefix})
	require.Equal(t, c.only(listKeys), objects, "flat listing is every key in byte order")
	require.Empty(t, prefixes)

	page, err := c.S.List(ctx(t), s3.ListInput{Prefix: c.Prefix})
	require.NoError(t, err)
	for _, o := range page.Objects {
		require.Equal(t, int64(len(o.Key)-len(c.Prefix)), o.Size, "size of %q", o.Key)
		require.NotEmpty(t, o.ETag)
		require.False(t, o.LastModified.IsZero())
	}

	objects, prefixes, _ = c.ListAll(s3.ListInput{Prefix: c.Prefix, Delimiter: "/"})
	require.Equal(t, c.only([]string{"a", "a-", "a0", "b"}), objects)
	require.Equal(t, []string{"a-/", "a/", "b/"}, prefixes)

	objects, prefixes, _ = c.ListAll(s3.ListInput{Prefix: c.K("a/"), Delimiter: "/"})
	require.Equal(t, c.only([]string{"a/b"}), objects)
	require.Equal(t, []string{"a/c/"}, prefixes)

	// The "directory marker" b/ is an object under the prefix b/.
	objects, prefixes, _ = c.ListAll(s3.ListInput{Prefix: c.K("b/"), Delimiter: "/"})
	require.Equal(t, c.only([]string{"b/"}), objects)
	require.Empty(t, prefixes)

	// A prefix that is not a directory still groups after itself.
	objects, prefixes, _ = c.ListAll(s3.ListInput{Prefix: c.K("a"), Delimiter: "/"})
	require.Equal(t, c.only([]string{"a", "a-", "a0"}), objects)
	require.Equal(t, []string{"a-/", "a/"}, prefixes)

	objects, prefixes, _ = c.ListAll(s3.ListInput{Prefix: c.K("nothing-here/"), Delimiter: "/"})
	require.Empty(t, objects)
	require.Empty(t, prefixes)
}

func testListPagination(t *testing.T, c *Case) {
	putListKeys(c)

	objects, _, pages := c.ListAll(s3.ListInput{Prefix: c.Prefix, MaxKeys: 2})
	require.Equal(t, c.only(listKeys), objects, "every key exactly once, in order, across pages")
	require.GreaterOrEqual(t, pages, (len(c.only(listKeys))+1)/2)

	// With a delimiter a common prefix counts as one entry and must appear on exactly
	// one page, however many keys it stands for.
	objects, prefixes, pages := c.ListAll(s3.ListInput{Prefix: c.Prefix, Delimiter: "/", MaxKeys: 2})
	require.Equal(t, c.only([]string{"a", "a-", "a0", "b"}), objects)
	require.Equal(t, []string{"a-/", "a/", "b/"}, prefixes)
	require.GreaterOrEqual(t, pages, (len(c.only([]string{"a", "a-", "a0", "b"}))+3+1)/2)

	// Pages interleave objects and prefixes in one byte order.
	var seq []string
	in := s3.ListInput{Prefix: c.Prefix, Delimiter: "/", MaxKeys: 1}
	for {
		page, err := c.S.List(ctx(t), in)
		require.NoError(t, err)
		for _, o := range page.Objects {
			seq = append(seq, o.Key[len(c.Prefix):])
		}
		for _, p := range page.CommonPrefixes {
			seq = append(seq, p[len(c.Prefix):])
		}
		if page.NextContinuationToken == "" {
			break
		}
		in.ContinuationToken = page.NextContinuationToken
	}
	require.Equal(t, c.only([]string{"a", "a-", "a-/", "a/", "a0", "b", "b/"}), seq)
	require.True(t, slices.IsSortedFunc(seq, func(x, y string) int { return bytes.Compare([]byte(x), []byte(y)) }))
}

func testListStartAfter(t *testing.T, c *Case) {
	putListKeys(c)

	objects, _, _ := c.ListAll(s3.ListInput{Prefix: c.Prefix, StartAfter: c.K("a-/z")})
	require.Equal(t, c.only([]string{"a/b", "a/c/d", "a/c/e", "a0", "b", "b/"}), objects)

	objects, _, _ = c.ListAll(s3.ListInput{Prefix: c.Prefix, StartAfter: c.K("a/bb"), MaxKeys: 2})
	require.Equal(t, c.only([]string{"a/c/d", "a/c/e", "a0", "b", "b/"}), objects, "start-after need not be a key")

	objects, prefixes, _ := c.ListAll(s3.ListInput{Prefix: c.Prefix, Delimiter: "/", StartAfter: c.K("a0")})
	require.Equal(t, c.only([]string{"b"}), objects)
	require.Equal(t, []string{"b/"}, prefixes)

	objects, prefixes, _ = c.ListAll(s3.ListInput{Prefix: c.Prefix, StartAfter: c.K("zzz")})
	require.Empty(t, objects)
	require.Empty(t, prefixes)
}
