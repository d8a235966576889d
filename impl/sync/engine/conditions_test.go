package engine

import (
	"context"
	"crypto/rand"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/impl/s3/embedded"
	"github.com/mount-s3/mount-s3/impl/s3/probe/probetest"
	"github.com/mount-s3/mount-s3/impl/s3/s3test"
	"github.com/mount-s3/mount-s3/impl/s3/storetest"
	"github.com/mount-s3/mount-s3/impl/sync/local"
	"github.com/mount-s3/mount-s3/spec/syncrule"
)

// newStrippedEnv is newEnv against a server that ignores If-Match / If-None-Match on writes.
func newStrippedEnv(t *testing.T) (*env, *probetest.StripConditions) {
	t.Helper()
	strip := &probetest.StripConditions{}
	return newEnvWith(t, strip.Middleware), strip
}

func headCheck(c *Config) { c.ConditionsUnsupported = true }

// The hazard: against a store that ignores conditions, an unconditional-in-effect upload
// overwrites another writer's version. This also shows the test server really strips them.
func TestIgnoredConditionsOverwriteWithoutTheHeadCheck(t *testing.T) {
	v, strip := newStrippedEnv(t)
	v.start(nil, nil)
	v.write("f", "base")
	v.flush()
	_, err := v.store.Put(context.Background(), "f", strings.NewReader("theirs"), 6, s3.WriteOptions{})
	require.NoError(t, err)
	v.write("f", "mine")
	v.flush()
	body, _ := v.object("f")
	require.Equal(t, "mine", body, "the store ignored If-Match and theirs was lost")
	require.Positive(t, strip.Stripped.Load())
	require.Zero(t, v.e.Stats().Conflicts)
}

func TestHeadCheckDetectsConflicts(t *testing.T) {
	v, strip := newStrippedEnv(t)
	v.start(nil, func(c *Config) { headCheck(c); c.Params.ImportThreshold = 1 << 10 })
	lf := syncrule.LostFoundDir(v.layer.FSID())
	ctx := context.Background()

	// Plain uploads go through, and without conditions.
	v.write("f", "base")
	v.write("g", "base")
	v.flush()
	v.write("f", "base 2")
	v.flush()
	body, _ := v.object("f")
	require.Equal(t, "base 2", body)
	require.Zero(t, strip.Stripped.Load(), "no condition is sent to a store that ignores them")
	require.Zero(t, v.e.Stats().Conflicts)
	v.requireSynced()

	// Changed here and there (If-Match): the bucket wins, ours goes to lost+found.
	theirs, err := v.store.Put(ctx, "f", strings.NewReader("theirs"), 6, s3.WriteOptions{})
	require.NoError(t, err)
	v.write("f", "mine")
	v.flush()
	body, _ = v.object("f")
	require.Equal(t, "theirs", body, "the bucket's version is not overwritten (C3)")
	require.Equal(t, "theirs", v.readLocal("f"))
	info, err := v.layer.Stat("f")
	require.NoError(t, err)
	require.Equal(t, normETag(theirs.ETag), info.State.Base.ETag)
	require.Equal(t, "mine", v.readLocal(keymapJoin(lf, syncrule.LostFoundName(1, "f"))))
	require.Contains(t, v.logs.String(), "sync: conflict: /f changed in the bucket")

	// Changed here, deleted there (If-Match on a missing object).
	require.NoError(t, v.store.Delete(ctx, "g"))
	v.write("g", "mine too")
	v.flush()
	_, err = v.layer.Stat("g")
	require.ErrorIs(t, err, local.ErrNotFound, "the bucket's absence wins")
	require.Equal(t, "mine too", v.readLocal(keymapJoin(lf, syncrule.LostFoundName(2, "g"))))
	_, ok := v.object("g")
	require.False(t, ok)

	// A new file here, created there first (If-None-Match: *).
	_, err = v.store.Put(ctx, "n", strings.NewReader("their new"), 9, s3.WriteOptions{})
	require.NoError(t, err)
	v.write("n", "my new")
	v.flush()
	body, _ = v.object("n")
	require.Equal(t, "their new", body)
	require.Equal(t, "my new", v.readLocal(keymapJoin(lf, syncrule.LostFoundName(3, "n"))))

	require.EqualValues(t, 3, v.e.Stats().Conflicts)
	require.Zero(t, strip.Stripped.Load())
	v.requireSynced()
}

func TestHeadCheckRecognisesOwnReplayedWrite(t *testing.T) {
	v, _ := newStrippedEnv(t)
	v.write("f", "mine")
	res, err := v.layer.Apply("f", syncrule.Flush{Now: v.clk.Now()}, syncrule.Params{})
	require.NoError(t, err)
	op := res.Ops[0]
	// The PUT landed before the crash; its result was never recorded.
	_, err = v.store.Put(context.Background(), "f", strings.NewReader("mine"), 4, s3.WriteOptions{
		Metadata: map[string]string{OpMetaKey: v.layer.FSID() + "." + fmt.Sprint(op.ID)}})
	require.NoError(t, err)

	v.start(nil, headCheck)
	v.settle()
	v.requireSynced()
	require.Equal(t, int64(1), v.puts.Load(), "the replay found its precondition failed with HEAD and sent nothing")
	require.Zero(t, v.e.Stats().Conflicts, "and recognised its own write")
}

// putDuringParts has another writer replace the object while the first part is uploaded.
type putDuringParts struct {
	s3.Store
	once sync.Once
	err  error
}

func (p *putDuringParts) UploadPart(ctx context.Context, key, uploadID string, n int32, data []byte, checksum string) (s3.CompletedPart, error) {
	p.once.Do(func() {
		_, p.err = p.Store.Put(ctx, key, strings.NewReader("theirs"), 6, s3.WriteOptions{})
	})
	return p.Store.UploadPart(ctx, key, uploadID, n, data, checksum)
}

// A multipart upload is checked again right before CompleteMultipartUpload: a change made
// while its parts were on their way is a conflict, and the upload is aborted.
func TestHeadCheckBeforeCompletingMultipart(t *testing.T) {
	v, strip := newStrippedEnv(t)
	racer := &putDuringParts{Store: v.store}
	v.write("big", "base")
	v.start(racer, func(c *Config) { headCheck(c); c.PartSize = 5 << 20 })
	v.flush()

	data := make([]byte, 12<<20)
	rand.Read(data)
	v.write("big", string(data))
	v.flush()
	require.NoError(t, racer.err)
	body, _ := v.object("big")
	require.Equal(t, "theirs", body, "the write made during the parts is not overwritten")
	lost := keymapJoin(syncrule.LostFoundDir(v.layer.FSID()), syncrule.LostFoundName(1, "big"))
	require.True(t, v.readLocal(lost) == string(data), "the local version is in lost+found")
	require.EqualValues(t, 1, v.e.Stats().Conflicts)
	ups, err := v.store.ListMultipartUploads(context.Background(), "")
	require.NoError(t, err)
	require.Empty(t, ups, "the upload was aborted")
	require.Zero(t, strip.Stripped.Load())
	v.requireSynced()
}

// headChecked answers every kind of condition as a store that honours it would, and sends
// none of them.
func TestHeadCheckedStore(t *testing.T) {
	strip := &probetest.StripConditions{}
	_, raw := probetest.StartServer(t, strip.Middleware)
	h := headChecked{raw}
	ctx := context.Background()
	put := func(key, body string, opts s3.WriteOptions) (s3.ObjectInfo, error) {
		return h.Put(ctx, key, strings.NewReader(body), int64(len(body)), opts)
	}
	const wrong = `"00000000000000000000000000000000"`

	v1, err := put("k", "v1", s3.WriteOptions{IfNoneMatch: "*"})
	require.NoError(t, err)
	_, err = put("k", "x", s3.WriteOptions{IfNoneMatch: "*"})
	require.ErrorIs(t, err, s3.ErrPreconditionFailed)
	_, err = put("k", "x", s3.WriteOptions{IfMatch: wrong})
	require.ErrorIs(t, err, s3.ErrPreconditionFailed)
	_, err = put("gone", "x", s3.WriteOptions{IfMatch: v1.ETag})
	require.ErrorIs(t, err, s3.ErrPreconditionFailed, "If-Match on a missing object")
	v2, err := put("k", "v2", s3.WriteOptions{IfMatch: v1.ETag})
	require.NoError(t, err)

	// Copies: the destination's conditions and the source's.
	_, err = h.Copy(ctx, "k", "k", s3.WriteOptions{Metadata: map[string]string{"a": "1"}, IfMatch: v2.ETag, SourceIfMatch: v1.ETag})
	require.ErrorIs(t, err, s3.ErrPreconditionFailed, "the source changed")
	_, err = h.Copy(ctx, "nosuch", "d", s3.WriteOptions{SourceIfMatch: v1.ETag})
	require.ErrorIs(t, err, s3.ErrNotFound)
	_, err = h.Copy(ctx, "k", "d", s3.WriteOptions{SourceIfMatch: v2.ETag, IfMatch: v2.ETag})
	require.ErrorIs(t, err, s3.ErrPreconditionFailed, "If-Match on a missing destination")
	_, err = h.Copy(ctx, "k", "d", s3.WriteOptions{SourceIfMatch: v2.ETag, IfNoneMatch: "*"})
	require.NoError(t, err)
	_, err = h.Copy(ctx, "k", "k", s3.WriteOptions{Metadata: map[string]string{"a": "1"}, IfMatch: v2.ETag, SourceIfMatch: v2.ETag})
	require.NoError(t, err)

	// Multipart: the part copies' source and the completion.
	cur, err := raw.Head(ctx, "k")
	require.NoError(t, err)
	id, err := h.CreateMultipart(ctx, "m", s3.WriteOptions{IfNoneMatch: "*"})
	require.NoError(t, err)
	_, err = h.UploadPartCopy(ctx, "m", id, 1, "k", 0, 1, v1.ETag)
	require.ErrorIs(t, err, s3.ErrPreconditionFailed)
	part, err := h.UploadPartCopy(ctx, "m", id, 1, "k", 0, 1, cur.ETag)
	require.NoError(t, err)
	_, err = raw.Put(ctx, "m", strings.NewReader("theirs"), 6, s3.WriteOptions{})
	require.NoError(t, err)
	_, err = h.CompleteMultipart(ctx, "m", id, []s3.CompletedPart{part}, s3.WriteOptions{IfNoneMatch: "*"})
	require.ErrorIs(t, err, s3.ErrPreconditionFailed, "another writer came first")
	require.NoError(t, raw.AbortMultipart(ctx, "m", id))

	require.Zero(t, strip.Stripped.Load(), "no condition reached the store")
}

// Over a store that ignores conditions on writes, headChecked passes the Store suite as a
// store that honours them: the conditional writes fail and succeed as on S3 (with the window
// of one request its doc names, which the suite does not race).
func TestHeadCheckedIsAStore(t *testing.T) {
	strip := &probetest.StripConditions{}
	srv, _ := s3test.Embedded(t, s3test.Options{Server: embedded.Options{Middleware: strip.Middleware}, Bucket: "b"})
	storetest.Run(t, func(t *testing.T) s3.Store {
		return headChecked{s3test.StoreAt(t, srv.URL(), "b", 3)}
	})
}
