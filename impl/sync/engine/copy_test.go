package engine

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/impl/sync/local"
)

// Copies over 6 MiB go multipart in 5 MiB parts: a 13 MiB file is three part copies.
func smallCopies(c *Config) {
	c.PartSize = 5 << 20
	c.CopyThreshold = 6 << 20
	c.CopyPartSize = 5 << 20
}

func (v *env) writeBig(path string, size int) []byte {
	v.t.Helper()
	data := make([]byte, size)
	_, _ = rand.Read(data)
	v.write(path, string(data))
	return data
}

func (v *env) noUploadsLeft() {
	v.t.Helper()
	ups, err := v.store.ListMultipartUploads(context.Background(), "")
	require.NoError(v.t, err)
	require.Empty(v.t, ups, "no multipart upload is left behind")
}

func TestRenameOfLargeFileIsAMultipartCopy(t *testing.T) {
	v := newEnv(t)
	v.start(nil, smallCopies)
	data := v.writeBig("f", 13<<20)
	v.flush()
	before, err := v.store.Head(context.Background(), "f")
	require.NoError(t, err)
	copies := v.copies.Load()

	require.NoError(t, v.layer.Rename("f", "g"))
	v.e.Notify()
	v.flush()
	require.Equal(t, []string{"g"}, v.keys())
	require.Equal(t, int64(3), v.copies.Load()-copies, "three part copies, no CopyObject of the whole")
	body, _ := v.object("g")
	require.True(t, body == string(data), "the copy differs from the file")
	after, err := v.store.Head(context.Background(), "g")
	require.NoError(t, err)
	for k, val := range before.Metadata {
		if k != OpMetaKey {
			require.Equal(t, val, after.Metadata[k], "metadata %q is carried over", k)
		}
	}
	require.Equal(t, before.ContentType, after.ContentType)
	require.NotEmpty(t, after.Metadata[OpMetaKey], "the copy carries the rename's marker")
	require.Equal(t, uint64(1), v.e.Stats().Renames)
	v.requireSynced()
	v.noUploadsLeft()

	// A chmod of the large file is a multipart copy onto itself.
	copies = v.copies.Load()
	require.NoError(t, v.layer.Chmod("g", 0o600))
	v.e.Notify()
	v.flush()
	require.Equal(t, int64(3), v.copies.Load()-copies)
	head, err := v.store.Head(context.Background(), "g")
	require.NoError(t, err)
	require.Equal(t, "384", head.Metadata["mode"])
	body, _ = v.object("g")
	require.True(t, body == string(data))
	v.requireSynced()

	// The recorded bases are the copies' versions: the next conditional upload holds.
	v.write("g", "small now")
	v.flush()
	body, _ = v.object("g")
	require.Equal(t, "small now", body)
	require.Zero(t, v.e.Stats().Conflicts)
	v.requireSynced()
	v.noUploadsLeft()
}

// changeSourceDuringCopy has another writer replace the source just before the second
// part of a multipart copy from it is copied (the first may be copied already).
type changeSourceDuringCopy struct {
	s3.Store
	other  s3.Store
	once   sync.Once
	change []byte
}

func (c *changeSourceDuringCopy) UploadPartCopy(ctx context.Context, key, uploadID string, number int32, src string, first, last int64, srcIfMatch string) (s3.CompletedPart, error) {
	if number == 2 {
		var err error
		c.once.Do(func() {
			_, err = c.other.Put(ctx, src, bytes.NewReader(c.change), int64(len(c.change)), s3.WriteOptions{})
		})
		if err != nil {
			return s3.CompletedPart{}, err
		}
	}
	return c.Store.UploadPartCopy(ctx, key, uploadID, number, src, first, last, srcIfMatch)
}

func TestRenameOfLargeFileWhoseSourceChangesMidCopy(t *testing.T) {
	v := newEnv(t)
	v.start(nil, smallCopies)
	data := v.writeBig("f", 13<<20)
	v.flush()
	v.stop()

	theirs := bytes.Repeat([]byte("theirs"), 2<<20) // 12 MiB: the parts would line up
	v.start(&changeSourceDuringCopy{Store: v.store, other: v.store, change: theirs}, smallCopies)
	require.NoError(t, v.layer.Rename("f", "g"))
	v.e.Notify()
	v.settle()
	for i := 0; i < 6 && len(v.keys()) != 2; i++ {
		v.advance(MaxBackoff)
	}
	v.flush()

	// The source is theirs and stays; the destination is our file, uploaded from local
	// data, never a mix of the two versions.
	require.Equal(t, []string{"f", "g"}, v.keys())
	body, _ := v.object("f")
	require.True(t, body == string(theirs), "the other writer's object is left in place")
	body, _ = v.object("g")
	require.True(t, body == string(data), "the destination is exactly the renamed file")
	require.Contains(t, v.logs.String(), "the source changed in the bucket")
	v.requireSynced()
	v.noUploadsLeft()
}

// multipartETags makes Head report the ETag S3 gives an object completed from parts
// ("...-N"), which the embedded server does not (it reports the MD5 of the bytes, the
// same as the source's).
type multipartETags struct {
	s3.Store
	keys map[string]bool
}

func (m multipartETags) Head(ctx context.Context, key string) (s3.ObjectInfo, error) {
	info, err := m.Store.Head(ctx, key)
	if err == nil && m.keys[key] {
		info.ETag = info.ETag[:len(info.ETag)-1] + `-3"`
	}
	return info, err
}

func TestRecoveryFinishesMultipartCopyRename(t *testing.T) {
	v := newEnv(t)
	v.start(nil, smallCopies)
	data := v.writeBig("a", 13<<20)
	v.flush()
	v.stop()

	require.NoError(t, v.layer.Rename("a", "b"))
	ops, err := v.layer.Pending()
	require.NoError(t, err)
	require.Len(t, ops, 1)
	require.Equal(t, local.OpRename, ops[0].Kind)
	// The crash came after the multipart copy (with the op's marker) and the delete of a,
	// before their results were recorded.
	src, err := v.store.Head(context.Background(), "a")
	require.NoError(t, err)
	src.Metadata[OpMetaKey] = fmt.Sprintf("%s.%d", v.layer.FSID(), ops[0].ID)
	_, err = s3.CopyLarge(context.Background(), v.store, src, "b", s3.WriteOptions{Metadata: src.Metadata, ContentType: src.ContentType},
		s3.CopyConfig{Threshold: 6 << 20, PartSize: 5 << 20})
	require.NoError(t, err)
	require.NoError(t, v.store.Delete(context.Background(), "a"))
	v.reopen()

	v.start(multipartETags{Store: v.store, keys: map[string]bool{"b": true}}, smallCopies)
	v.settle()
	require.Equal(t, []string{"b"}, v.keys())
	body, _ := v.object("b")
	require.True(t, body == string(data))
	require.Contains(t, v.logs.String(), "finished after a restart", "the copy is recognised by its marker, not its ETag")
	require.NotContains(t, v.logs.String(), "the source is gone")
	v.requireSynced()
}

func TestReplayDoesNotRedoAFinishedMultipartCopy(t *testing.T) {
	v := newEnv(t)
	v.start(nil, smallCopies)
	data := v.writeBig("a", 13<<20)
	v.flush()
	v.stop()

	require.NoError(t, v.layer.Rename("a", "b"))
	ops, err := v.layer.Pending()
	require.NoError(t, err)
	require.Len(t, ops, 1)
	// The crash came after the multipart copy, before its result was recorded and the source
	// deleted.
	src, err := v.store.Head(context.Background(), "a")
	require.NoError(t, err)
	src.Metadata[OpMetaKey] = fmt.Sprintf("%s.%d", v.layer.FSID(), ops[0].ID)
	_, err = s3.CopyLarge(context.Background(), v.store, src, "b", s3.WriteOptions{Metadata: src.Metadata, ContentType: src.ContentType},
		s3.CopyConfig{Threshold: 6 << 20, PartSize: 5 << 20})
	require.NoError(t, err)
	v.reopen()

	copies := v.copies.Load()
	v.start(nil, smallCopies)
	v.settle()
	require.Equal(t, copies, v.copies.Load(), "the finished copy is not made again")
	require.Equal(t, []string{"b"}, v.keys())
	body, _ := v.object("b")
	require.True(t, body == string(data))
	v.requireSynced()
}
