package engine

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/impl/sync/importer"
	"github.com/mount-s3/mount-s3/impl/sync/local"
)

// importTree imports the listed directories from the bucket (no data: every file stays
// metadata-only, as a large one would) and waits for the background attribute reads.
func (v *env) importTree(dirs ...string) {
	v.t.Helper()
	im := importer.New(importer.Config{Layer: v.layer, Store: v.store, Threshold: -1, Workers: 2})
	defer im.Close()
	for _, d := range dirs {
		require.NoError(v.t, im.EnsureDir(context.Background(), d))
	}
	im.Wait()
	v.puts.Store(0) // count only what the engine writes from here on
	v.copies.Store(0)
	v.deletes.Store(0)
}

func (v *env) putObject(key, body string, meta map[string]string) {
	v.t.Helper()
	_, err := v.store.Put(context.Background(), key, strings.NewReader(body), int64(len(body)), s3.WriteOptions{Metadata: meta})
	require.NoError(v.t, err)
}

func TestImportedDirectoryHasItsMarkerAsBase(t *testing.T) {
	v := newEnv(t)
	v.putObject("d/", "", map[string]string{"mode": "16832", "uid": "7", "gid": "8"}) // drwx------
	v.putObject("d/x", "X", nil)
	v.putObject("nomarker/y", "Y", nil)
	v.importTree("", "d", "nomarker")
	d, err := v.layer.Stat("d")
	require.NoError(t, err)
	require.False(t, d.State.Base.IsZero(), "the marker is d's base")
	require.False(t, d.State.Dirty())
	require.False(t, d.AttrPending)
	require.Equal(t, local.Attr{Mode: 0o700, UID: 7, GID: 8, Mtime: d.Attr.Mtime}, d.Attr, "the marker's attributes")
	n, err := v.layer.Stat("nomarker")
	require.NoError(t, err)
	require.True(t, n.State.Base.IsZero())

	// chmod is a copy onto the marker, not a create that conflicts with it.
	v.start(nil, nil)
	require.NoError(t, v.layer.Chmod("d", 0o750))
	require.NoError(t, v.layer.Chmod("nomarker", 0o750))
	v.e.Notify()
	v.flush()
	require.Zero(t, v.e.Stats().Conflicts)
	head, err := v.store.Head(context.Background(), "d/")
	require.NoError(t, err)
	require.Equal(t, "488", head.Metadata["mode"])
	_, err = v.store.Head(context.Background(), "nomarker/")
	require.NoError(t, err, "a directory with no marker gets one for its attributes")
	v.requireSynced()
}

// A directory seen only as a common prefix (never listed itself) has a marker nobody knew of:
// a chmod's If-None-Match create finds it, takes it as the base and updates it, no conflict.
func TestChmodOfUnlistedDirectoryWithMarker(t *testing.T) {
	v := newEnv(t)
	v.putObject("d/", "", map[string]string{"mode": "16877"})
	v.putObject("d/x", "X", nil)
	v.importTree("")
	v.start(nil, nil)
	require.NoError(t, v.layer.Chmod("d", 0o700))
	v.e.Notify()
	v.flush()
	require.Zero(t, v.e.Stats().Conflicts)
	head, err := v.store.Head(context.Background(), "d/")
	require.NoError(t, err)
	require.Equal(t, "448", head.Metadata["mode"])
	require.Equal(t, []string{"d/", "d/x"}, v.keys())
	v.requireSynced()
}

func TestRmdirOfImportedDirectoryDeletesItsMarker(t *testing.T) {
	v := newEnv(t)
	v.putObject("d/", "", nil)
	v.putObject("d/x", "X", nil)
	v.putObject("keep", "K", nil)
	v.importTree("", "d")
	v.start(nil, nil)
	require.NoError(t, v.layer.Remove("d/x"))
	require.NoError(t, v.layer.Rmdir("d"))
	v.e.Notify()
	v.flush()
	require.Equal(t, []string{"keep"}, v.keys())
	v.requireSynced()
}

func TestRenameOfImportedDirectoryMovesItsMarker(t *testing.T) {
	v := newEnv(t)
	v.putObject("d/", "", map[string]string{"mode": "16877"})
	v.putObject("d/x", "X", nil)
	v.putObject("d/sub/", "", nil)
	v.putObject("d/sub/y", "Y", nil)
	v.importTree("", "d", "d/sub")
	v.start(nil, nil)
	require.NoError(t, v.layer.Rename("d", "e"))
	v.e.Notify()
	v.flush()
	require.Equal(t, []string{"e/", "e/sub/", "e/sub/y", "e/x"}, v.keys())
	require.Zero(t, v.puts.Load(), "metadata-only files and markers move by copy")
	head, err := v.store.Head(context.Background(), "e/")
	require.NoError(t, err)
	require.Equal(t, "16877", head.Metadata["mode"])
	v.requireSynced()
}

// TestRenameChainBeforeTheFirstCopy: mv a b; mv b c before the engine ran the copy a->b.
func TestRenameChainBeforeTheFirstCopy(t *testing.T) {
	for _, tc := range []struct {
		name  string
		moves func(t *testing.T, l *local.Layer)
		want  []string
		body  map[string]string
		puts  int64 // markers of new directories
	}{
		{"a-b-c", func(t *testing.T, l *local.Layer) {
			require.NoError(t, l.Rename("a", "b"))
			require.NoError(t, l.Rename("b", "c"))
		}, []string{"c", "other"}, map[string]string{"c": "A"}, 0},
		{"a-b-c-d", func(t *testing.T, l *local.Layer) {
			require.NoError(t, l.Rename("a", "b"))
			require.NoError(t, l.Rename("b", "c"))
			require.NoError(t, l.Rename("c", "d"))
		}, []string{"d", "other"}, map[string]string{"d": "A"}, 0},
		{"a-b-a", func(t *testing.T, l *local.Layer) {
			require.NoError(t, l.Rename("a", "b"))
			require.NoError(t, l.Rename("b", "a"))
		}, []string{"a", "other"}, map[string]string{"a": "A"}, 0},
		{"a-b-rm", func(t *testing.T, l *local.Layer) {
			require.NoError(t, l.Rename("a", "b"))
			require.NoError(t, l.Remove("b"))
		}, []string{"other"}, nil, 0},
		{"a-b-over-other", func(t *testing.T, l *local.Layer) {
			require.NoError(t, l.Rename("a", "b"))
			require.NoError(t, l.Rename("b", "other"))
		}, []string{"other"}, map[string]string{"other": "A"}, 0},
		{"a-b-replaced", func(t *testing.T, l *local.Layer) {
			require.NoError(t, l.Rename("a", "b"))
			require.NoError(t, l.Rename("other", "b"))
		}, []string{"b"}, map[string]string{"b": "O"}, 0},
		{"a-b-c-then-chmod", func(t *testing.T, l *local.Layer) {
			require.NoError(t, l.Rename("a", "b"))
			require.NoError(t, l.Chmod("b", 0o600))
			require.NoError(t, l.Rename("b", "c"))
		}, []string{"c", "other"}, map[string]string{"c": "A"}, 0},
		{"dir", func(t *testing.T, l *local.Layer) {
			_, err := l.Mkdir("dd", 0o755, 1, 2)
			require.NoError(t, err)
			require.NoError(t, l.Rename("a", "dd/a"))
			require.NoError(t, l.Rename("dd", "ee"))
		}, []string{"ee/", "ee/a", "other"}, map[string]string{"ee/a": "A"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newEnv(t)
			v.putObject("a", "A", map[string]string{"mode": "33188"})
			v.putObject("other", "O", nil)
			v.importTree("") // a is metadata-only: its bytes can only move by copy
			v.start(nil, nil)
			tc.moves(t, v.layer)
			v.e.Notify()
			v.flush()
			require.Equal(t, tc.want, v.keys())
			for k, want := range tc.body {
				got, _ := v.object(k)
				require.Equal(t, want, got, k)
			}
			require.Equal(t, tc.puts, v.puts.Load(), "no file was uploaded: bytes moved by copy")
			require.Zero(t, v.e.Stats().Conflicts)
			v.requireSynced()
		})
	}
}

// gatedCopy holds the first Copy until release is closed.
type gatedCopy struct {
	s3.Store
	once    sync.Once
	started chan struct{}
	release chan struct{}
}

func (g *gatedCopy) Copy(ctx context.Context, src, dst string, opts s3.WriteOptions) (s3.ObjectInfo, error) {
	first := false
	g.once.Do(func() { first = true })
	if first {
		close(g.started)
		<-g.release
	}
	return g.Store.Copy(ctx, src, dst, opts)
}

// TestRenameAgainWhileTheCopyRuns: the second rename happens while the engine is copying a to
// b; the copy's op must not be rewritten under it, and b must still end up deleted.
func TestRenameAgainWhileTheCopyRuns(t *testing.T) {
	v := newEnv(t)
	v.putObject("a", "A", nil)
	v.importTree("")
	g := &gatedCopy{Store: v.store, started: make(chan struct{}), release: make(chan struct{})}
	v.start(g, nil)
	require.NoError(t, v.layer.Rename("a", "b"))
	v.e.Notify()
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15e9)
		defer cancel()
		done <- v.e.Flush(ctx)
	}()
	<-g.started
	require.NoError(t, v.layer.Rename("b", "c"))
	v.e.Notify()
	close(g.release)
	require.NoError(t, <-done)
	v.flush()
	require.Equal(t, []string{"c"}, v.keys())
	require.Zero(t, v.puts.Load())
	v.requireSynced()
}
