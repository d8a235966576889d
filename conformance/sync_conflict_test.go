package conformance

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/conformance/harness"
	"github.com/mount-s3/mount-s3/spec/syncrule"
)

// lostFoundDir is the mount's lost+found directory (C4), found by its name's prefix since the
// fsid is the sync dir's own.
func lostFoundDir(t *testing.T, m *harness.Mount) string {
	t.Helper()
	var dir string
	require.Eventually(t, func() bool {
		ents, err := os.ReadDir(m.Dir)
		if err != nil {
			return false
		}
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), syncrule.LostFoundDirPrefix) && e.IsDir() {
				dir = filepath.Join(m.Dir, e.Name())
				return true
			}
		}
		return false
	}, 5*time.Second, 50*time.Millisecond, "no lost+found directory in %s", m.Dir)
	return dir
}

// lostFile returns the one file in lost+found whose original path (the xattr of C4) is orig.
func lostFile(t *testing.T, m *harness.Mount, orig string) string {
	t.Helper()
	dir := lostFoundDir(t, m)
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	var found []string
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		if getxattr(t, p, syncrule.OriginalPathXattr) == orig {
			require.True(t, strings.HasSuffix(e.Name(), "-"+filepath.Base(orig)), e.Name())
			found = append(found, p)
		}
	}
	require.Len(t, found, 1, "lost+found files for %s", orig)
	return found[0]
}

func getxattr(t *testing.T, path, name string) string {
	t.Helper()
	buf := make([]byte, 4096)
	n, err := syscall.Getxattr(path, name, buf)
	require.NoError(t, err, "getxattr %s %s", path, name)
	return string(buf[:n])
}

// eventuallyReads waits for path to read as want: the kernel may keep the old attributes for
// the attribute timeout (1 s) after the import replaced the file behind its back (C2).
func eventuallyReads(t *testing.T, path, want string) {
	t.Helper()
	var got string
	var err error
	ok := assertEventually(func() bool {
		var b []byte
		b, err = os.ReadFile(path)
		got = string(b)
		return err == nil && got == want
	})
	require.True(t, ok, "%s reads %q (err %v), want %q", path, got, err, want)
}

func eventuallyGone(t *testing.T, path string) {
	t.Helper()
	var err error
	ok := assertEventually(func() bool {
		_, err = os.Lstat(path)
		return errors.Is(err, os.ErrNotExist)
	})
	require.True(t, ok, "%s still exists (err %v)", path, err)
}

func assertEventually(f func() bool) bool {
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if f() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// TestSyncConflicts: the bucket wins every conflict (C3-C6), a flush after one succeeds, and
// every version a program closed ends up in the bucket or in lost+found (C7).
func TestSyncConflicts(t *testing.T) {
	srv, store := harness.NewServer(t)
	m := syncMount(t, srv, store, t.TempDir())
	require.NoError(t, os.MkdirAll(m.Path("c"), 0o755))
	for _, f := range []string{"a.txt", "b.txt", "c.txt"} {
		require.NoError(t, os.WriteFile(m.Path("c/"+f), []byte("base of "+f), 0o644))
	}
	flush(t, m)
	requireBucketMatches(t, m, "c")

	t.Run("a-edit-here-put-there", func(t *testing.T) {
		m.Put(t, "c/a.txt", []byte("their version"))
		require.NoError(t, os.WriteFile(m.Path("c/a.txt"), []byte("my edit, closed"), 0o644))
		flush(t, m) // resolved, not pending
		require.Equal(t, "their version", bucketObjects(t, store, "c/a.txt")["c/a.txt"], "the bucket is not overwritten")
		eventuallyReads(t, m.Path("c/a.txt"), "their version")
		lf := lostFile(t, m, "c/a.txt")
		b, err := os.ReadFile(lf)
		require.NoError(t, err)
		require.Equal(t, "my edit, closed", string(b), "the closed edit is in lost+found")
		require.Contains(t, m.Logs(), "sync: conflict: /c/a.txt changed in the bucket")
	})

	t.Run("b-edit-here-delete-there", func(t *testing.T) {
		m.Delete(t, "c/b.txt")
		require.NoError(t, os.WriteFile(m.Path("c/b.txt"), []byte("edited after their delete"), 0o644))
		flush(t, m)
		eventuallyGone(t, m.Path("c/b.txt"))
		require.NotContains(t, bucketObjects(t, store, "c/"), "c/b.txt", "the bucket's absence wins")
		b, err := os.ReadFile(lostFile(t, m, "c/b.txt"))
		require.NoError(t, err)
		require.Equal(t, "edited after their delete", string(b))
	})

	t.Run("c-delete-here-change-there", func(t *testing.T) {
		m.Put(t, "c/c.txt", []byte("changed there"))
		require.NoError(t, os.Remove(m.Path("c/c.txt")))
		flush(t, m)
		require.Equal(t, "changed there", bucketObjects(t, store, "c/")["c/c.txt"], "nothing was deleted (C6)")
		eventuallyReads(t, m.Path("c/c.txt"), "changed there")
		require.Contains(t, m.Logs(), "the local delete of /c/c.txt was dropped")
	})

	t.Run("lost+found", func(t *testing.T) {
		dir := lostFoundDir(t, m)
		lf := lostFile(t, m, "c/a.txt")
		// C5: read and copy out, yes; rename within, into or of it, or rmdir, no.
		require.ErrorIs(t, os.Rename(lf, filepath.Join(dir, "renamed")), syscall.EPERM)
		require.ErrorIs(t, os.Rename(m.Path("c/a.txt"), filepath.Join(dir, "in")), syscall.EPERM)
		require.ErrorIs(t, os.Rename(dir, m.Path("elsewhere")), syscall.EPERM)
		require.ErrorIs(t, syscall.Rmdir(dir), syscall.EPERM)
		// Copied back to its original path it is a new version of that file, uploaded.
		b, err := os.ReadFile(lf)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(m.Path(getxattr(t, lf, syncrule.OriginalPathXattr)), b, 0o644))
		flush(t, m)
		require.Equal(t, "my edit, closed", bucketObjects(t, store, "c/")["c/a.txt"])
		// Nothing in lost+found is ever uploaded.
		for k := range bucketObjects(t, store, "") {
			require.False(t, strings.HasPrefix(k, syncrule.LostFoundDirPrefix), k)
		}
		// Deleted, it is gone.
		require.NoError(t, os.Remove(lf))
		_, err = os.Stat(lf)
		require.ErrorIs(t, err, os.ErrNotExist)
		requireBucketMatches(t, m, "c")
	})
}

// TestSyncConflictTwoMounts: two sync mounts of one bucket (two machines, C7) edit one file.
// The first flush wins the bucket; the second mount's upload conflicts, so it imports the
// winner and keeps its own version in its lost+found.
func TestSyncConflictTwoMounts(t *testing.T) {
	srv, store := harness.NewServer(t)
	a := syncMount(t, srv, store, t.TempDir())
	require.NoError(t, os.MkdirAll(a.Path("d"), 0o755))
	require.NoError(t, os.WriteFile(a.Path("d/shared.txt"), []byte("base"), 0o644))
	flush(t, a)
	b := syncMount(t, srv, store, t.TempDir())
	eventuallyReads(t, b.Path("d/shared.txt"), "base")

	require.NoError(t, os.WriteFile(a.Path("d/shared.txt"), []byte("version from A"), 0o644))
	require.NoError(t, os.WriteFile(b.Path("d/shared.txt"), []byte("version from B"), 0o644))
	flush(t, a)
	flush(t, b)

	require.Equal(t, "version from A", bucketObjects(t, store, "d/")["d/shared.txt"])
	eventuallyReads(t, a.Path("d/shared.txt"), "version from A")
	eventuallyReads(t, b.Path("d/shared.txt"), "version from A")
	got, err := os.ReadFile(lostFile(t, b, "d/shared.txt"))
	require.NoError(t, err)
	require.Equal(t, "version from B", string(got), "B's closed version is in B's lost+found")
	_, err = os.ReadDir(filepath.Join(a.Dir))
	require.NoError(t, err)
	ents, _ := os.ReadDir(a.Dir)
	for _, e := range ents {
		require.False(t, strings.HasPrefix(e.Name(), syncrule.LostFoundDirPrefix), "A had no conflict")
	}
	requireBucketMatches(t, a, "d")
	requireBucketMatches(t, b, "d")
}

// TestSyncProbeQuiet: on a store that honours conditional writes (the embedded server, and
// MinIO when MOUNT_S3_TEST_ENDPOINT names it) a sync mount finds out at start without a
// warning, and its probe leaves no object in the bucket (C3).
func TestSyncProbeQuiet(t *testing.T) {
	srv, store := harness.NewServer(t)
	m := syncMount(t, srv, store, t.TempDir())
	require.NoError(t, os.WriteFile(m.Path("a"), []byte("x"), 0o644))
	flush(t, m)
	require.NotContains(t, m.Logs(), "conditional writes", "the probe found the conditions honoured")
	require.Equal(t, map[string]string{"a": "x"}, bucketObjects(t, store, ""), "the probe object is gone")
}
