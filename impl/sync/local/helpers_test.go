package local

import (
	"encoding/binary"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/mount-s3/mount-s3/impl/clock"
	"github.com/mount-s3/mount-s3/spec/syncrule"
)

// tick is a clock that moves one second per reading, so every change has its own time.
type tick struct {
	mu sync.Mutex
	t  time.Time
}

func (c *tick) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Second)
	return c.t
}

func testOpts() Options {
	c := &tick{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	return Options{Bucket: "bkt", Prefix: "pre/", Clock: clockFunc(c.now), UID: 1000, GID: 1000}
}

// clockFunc is a Clock read from a function: the layer reads the time and never waits.
type clockFunc func() time.Time

func (f clockFunc) Now() time.Time                { return f() }
func (f clockFunc) TimerAt(time.Time) clock.Timer { panic("the local layer never waits on a timer") }

func newLayer(t *testing.T) (*Layer, string) {
	t.Helper()
	dir := t.TempDir()
	l, err := Open(dir, testOpts())
	require.NoError(t, err)
	t.Cleanup(func() { closeChecked(t, l) })
	return l, dir
}

// closeChecked checks the indexes of a layer a test leaves open, then closes it.
func closeChecked(t *testing.T, l *Layer) {
	if !l.closed.Load() && !t.Failed() {
		if err := checkIndexes(l); err != nil {
			t.Errorf("at the end of the test: %v", err)
		}
	}
	l.Close()
}

func reopen(t *testing.T, l *Layer) *Layer {
	t.Helper()
	require.NoError(t, l.Close())
	l2, err := Open(l.dir, l.opts)
	require.NoError(t, err)
	t.Cleanup(func() { closeChecked(t, l2) })
	return l2
}

func writeFile(t *testing.T, l *Layer, path, data string) {
	t.Helper()
	if _, err := l.Stat(path); err != nil {
		_, err := l.Create(path, 0o644, 1, 2)
		require.NoError(t, err)
	}
	require.NoError(t, l.Truncate(path, 0))
	_, err := l.WriteAt(path, []byte(data), 0)
	require.NoError(t, err)
}

func readFile(t *testing.T, l *Layer, path string) string {
	t.Helper()
	info, err := l.Stat(path)
	require.NoError(t, err)
	buf := make([]byte, info.Size)
	n, err := l.ReadAt(path, buf, 0)
	if err != io.EOF {
		require.NoError(t, err)
	}
	return string(buf[:n])
}

// tb is what both *testing.T and *rapid.T provide.
type tb interface {
	require.TestingT
	Helper()
}

// upload plays the engine: snapshot, "PUT", mark uploaded.
func upload(t tb, l *Layer, path string) bool {
	t.Helper()
	info, err := l.Stat(path)
	require.NoError(t, err)
	gen := info.State.Gen
	if info.Kind == KindFile {
		rc, g, _, err := l.Snapshot(path)
		require.NoError(t, err)
		rc.Close()
		gen = g
	}
	clean, err := l.MarkUploaded(path, gen, syncrule.Version{ETag: "etag-" + path})
	require.NoError(t, err)
	return clean
}

func dirtyPaths(t *testing.T, l *Layer) []string {
	t.Helper()
	d, err := l.Dirty()
	require.NoError(t, err)
	out := []string{}
	for _, i := range d {
		out = append(out, i.Path)
	}
	return out
}

func names(infos []Info) []string {
	out := []string{}
	for _, i := range infos {
		out = append(out, i.Path)
	}
	return out
}

func stringReader(s string) io.Reader { return strings.NewReader(s) }

// checkIndexes verifies the ids and dirs indexes against the records: every record with an
// id is among its id's paths and every path of an id has a record with it; the dirs index
// holds exactly the visible directories.
func checkIndexes(l *Layer) error {
	return l.db.View(func(tx *bolt.Tx) error {
		ids := map[uint64][]string{}
		dirs := map[string]bool{}
		err := tx.Bucket(bNodes).ForEach(func(k, v []byte) error {
			path := pathOfNodeKey(k)
			r, err := decodeRec(path, v)
			if err != nil {
				return err
			}
			if r.ID != 0 {
				ids[r.ID] = append(ids[r.ID], path)
			}
			if r.Kind == KindDir && r.visible() {
				dirs[string(k)] = true
			}
			return nil
		})
		if err != nil {
			return err
		}
		n := 0
		err = tx.Bucket(bIDs).ForEach(func(k, v []byte) error {
			n++
			id := binary.BigEndian.Uint64(k)
			got, want := pathsOfID(tx, id), ids[id]
			sort.Strings(got)
			sort.Strings(want)
			if strings.Join(got, "|") != strings.Join(want, "|") {
				return fmt.Errorf("id %d: index names %q, records %q", id, got, want)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if n != len(ids) {
			return fmt.Errorf("the ids index has %d ids, the records %d", n, len(ids))
		}
		n = 0
		err = tx.Bucket(bDirs).ForEach(func(k, _ []byte) error {
			n++
			if !dirs[string(k)] {
				return fmt.Errorf("the dirs index has %q, which is no visible directory", pathOfNodeKey(k))
			}
			return nil
		})
		if err == nil && n != len(dirs) {
			err = fmt.Errorf("the dirs index has %d directories, the records %d", n, len(dirs))
		}
		return err
	})
}
