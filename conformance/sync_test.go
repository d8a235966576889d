package conformance

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/conformance/harness"
	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/spec/posixmeta"
)

// syncMount mounts the server's bucket in sync mode with the sync dir syncDir. The window is
// an hour so that nothing is uploaded until the test flushes: what reaches the bucket is then
// exactly what one write-back of the final state gives.
func syncMount(t *testing.T, srv harness.Endpoint, store s3.Store, syncDir string, extra ...string) *harness.Mount {
	t.Helper()
	args := append([]string{"--sync-dir", syncDir, "--write-back-delay", "1h"}, extra...)
	return harness.MountServer(t, srv, store, harness.Options{Args: args})
}

// flush runs `mount-s3 sync --flush MNT` and fails the test if it does.
func flush(t *testing.T, m *harness.Mount) {
	t.Helper()
	out, err := harness.Flush(t, m.Dir)
	require.NoError(t, err, "mount-s3 sync --flush: %s\n%s", out, m.Logs())
}

// run runs a program with its output in the failure message.
func run(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
		"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com", "HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s %s:\n%s", name, strings.Join(args, " "), out)
	return string(out)
}

func needProgram(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("MOUNT_S3_REQUIRE_PROGRAMS") == "1" {
			t.Fatalf("%s is not installed (.ci/run installs it)", name)
		}
		t.Skipf("%s is not installed", name)
	}
}

// expectedObjects walks rel inside the mount and returns the objects sync mode must have
// written for it: a key per file with its bytes, per symlink with its target as the body (Y3),
// and a "dir/" marker per directory (Y8).
func expectedObjects(t *testing.T, m *harness.Mount, rel string) map[string]string {
	t.Helper()
	want := map[string]string{}
	err := filepath.WalkDir(m.Path(rel), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		key := strings.TrimPrefix(p, m.Dir+"/")
		switch {
		case d.IsDir():
			want[key+"/"] = ""
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			want[key] = target
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			want[key] = string(b)
		}
		return nil
	})
	require.NoError(t, err)
	return want
}

// bucketObjects returns every object under prefix with its body.
func bucketObjects(t testing.TB, store s3.Store, prefix string) map[string]string {
	t.Helper()
	ctx := context.Background()
	got := map[string]string{}
	in := s3.ListInput{Prefix: prefix}
	for {
		page, err := store.List(ctx, in)
		require.NoError(t, err)
		for _, o := range page.Objects {
			body, _, err := store.Get(ctx, o.Key, 0, -1, "")
			require.NoError(t, err)
			b, err := io.ReadAll(body)
			body.Close()
			require.NoError(t, err)
			got[o.Key] = string(b)
		}
		if page.NextContinuationToken == "" {
			return got
		}
		in.ContinuationToken = page.NextContinuationToken
	}
}

// requireBucketMatches checks that the bucket holds exactly the objects of rel's tree.
func requireBucketMatches(t *testing.T, m *harness.Mount, rel string) {
	t.Helper()
	want := expectedObjects(t, m, rel)
	got := bucketObjects(t, m.Store, rel+"/")
	var missing, extra, differ []string
	for k, v := range want {
		g, ok := got[k]
		switch {
		case !ok:
			missing = append(missing, k)
		case g != v:
			differ = append(differ, fmt.Sprintf("%s (%d bytes, want %d)", k, len(g), len(v)))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			extra = append(extra, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	sort.Strings(differ)
	require.True(t, len(missing)+len(extra)+len(differ) == 0,
		"bucket differs from the mount under %s/:\nmissing %v\nextra %v\ndiffering %v", rel, missing, extra, differ)
}

// TestSyncPrograms runs real programs on one sync mount, each in its own directory, and checks
// after a write-back that the bucket holds exactly what the mount shows (issue 6's done-means).
func TestSyncPrograms(t *testing.T) {
	srv, store := harness.NewServer(t)
	m := syncMount(t, srv, store, t.TempDir())

	t.Run("tar", func(t *testing.T) {
		needProgram(t, "tar")
		src := t.TempDir()
		require.NoError(t, os.MkdirAll(filepath.Join(src, "a/b/c"), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(src, "a/small.txt"), []byte("small\n"), 0o644))
		require.NoError(t, os.WriteFile(filepath.Join(src, "a/b/c/big.bin"), bytes.Repeat([]byte("0123456789abcdef"), 1<<16), 0o600))
		require.NoError(t, os.WriteFile(filepath.Join(src, "a/b/empty"), nil, 0o644))
		require.NoError(t, os.Symlink("b/c/big.bin", filepath.Join(src, "a/link")))
		tarball := filepath.Join(t.TempDir(), "t.tar")
		run(t, src, "tar", "cf", tarball, "a")
		require.NoError(t, os.Mkdir(m.Path("tar"), 0o755))
		run(t, m.Path("tar"), "tar", "xf", tarball)
		run(t, t.TempDir(), "diff", "-r", "--no-dereference", src+"/a", m.Path("tar/a"))
		fi, err := os.Stat(m.Path("tar/a/b/c/big.bin"))
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
		flush(t, m)
		requireBucketMatches(t, m, "tar")
		info, err := store.Head(context.Background(), "tar/a/link")
		require.NoError(t, err)
		require.Equal(t, posixmeta.Symlink, posixmeta.Decode(info.Metadata).Kind, "a symlink is stored as s3fs stores one (Y3)")
		info, err = store.Head(context.Background(), "tar/a/b/c/big.bin")
		require.NoError(t, err)
		a := posixmeta.Decode(info.Metadata)
		require.Equal(t, uint32(0o600), a.Mode)
		require.True(t, a.HasMtime)
		require.Equal(t, fi.ModTime().Unix(), a.Mtime.Unix(), "tar's mtime is exported (Y7)")
	})

	t.Run("git", func(t *testing.T) {
		needProgram(t, "git")
		dir := m.Path("repo")
		run(t, m.Dir, "git", "init", "-q", "repo")
		require.NoError(t, os.WriteFile(filepath.Join(dir, "README"), []byte("hello\n"), 0o644))
		run(t, dir, "git", "add", "README")
		run(t, dir, "git", "commit", "-q", "-m", "first")
		require.NoError(t, os.WriteFile(filepath.Join(dir, "README"), []byte("hello again\n"), 0o644))
		run(t, dir, "git", "commit", "-q", "-a", "-m", "second")
		require.Contains(t, run(t, dir, "git", "log", "--oneline"), "second")
		run(t, dir, "git", "fsck", "--strict")
		flush(t, m)
		requireBucketMatches(t, m, "repo")
	})

	t.Run("sqlite3", func(t *testing.T) {
		needProgram(t, "sqlite3")
		require.NoError(t, os.Mkdir(m.Path("db"), 0o755))
		var sql strings.Builder
		sql.WriteString("create table t(a integer primary key, b text);\n")
		for i := 0; i < 1000; i++ {
			fmt.Fprintf(&sql, "insert into t(b) values('row %d');\n", i)
		}
		cmd := exec.Command("sqlite3", m.Path("db/test.db"))
		cmd.Stdin = strings.NewReader(sql.String())
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		require.Equal(t, "1000\n", run(t, m.Dir, "sqlite3", m.Path("db/test.db"), "select count(*) from t;"))
		flush(t, m)
		requireBucketMatches(t, m, "db")
		// The uploaded database is a database: open a copy taken from the bucket.
		copyPath := filepath.Join(t.TempDir(), "copy.db")
		require.NoError(t, os.WriteFile(copyPath, []byte(bucketObjects(t, store, "db/test.db")["db/test.db"]), 0o644))
		require.Equal(t, "1000|row 999\n", run(t, m.Dir, "sqlite3", copyPath, "select count(*), (select b from t where a = 1000) from t;"))
	})

	t.Run("rsync", func(t *testing.T) {
		needProgram(t, "rsync")
		src := t.TempDir()
		for i := 0; i < 20; i++ {
			p := filepath.Join(src, fmt.Sprintf("d%d/f%d.txt", i%4, i))
			require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
			require.NoError(t, os.WriteFile(p, bytes.Repeat([]byte{byte('a' + i)}, 100*i), 0o640))
		}
		run(t, m.Dir, "rsync", "-a", src+"/", m.Path("rsync")+"/")
		// A second run finds nothing to do: sizes and mtimes were kept.
		out := run(t, m.Dir, "rsync", "-a", "--itemize-changes", src+"/", m.Path("rsync")+"/")
		require.Empty(t, strings.TrimSpace(out), "rsync found differences after a copy")
		flush(t, m)
		requireBucketMatches(t, m, "rsync")
	})

	t.Run("mv-1000", func(t *testing.T) {
		require.NoError(t, os.Mkdir(m.Path("many"), 0o755))
		for i := 0; i < 1000; i++ {
			require.NoError(t, os.WriteFile(m.Path(fmt.Sprintf("many/f%04d", i)), []byte(fmt.Sprint(i)), 0o644))
		}
		flush(t, m)
		require.Len(t, bucketObjects(t, store, "many/"), 1001)
		run(t, m.Dir, "mv", "many", "moved")
		entries, err := os.ReadDir(m.Path("moved"))
		require.NoError(t, err)
		require.Len(t, entries, 1000)
		flush(t, m)
		require.Empty(t, bucketObjects(t, store, "many/"), "the old keys are deleted after the copy (Y9)")
		requireBucketMatches(t, m, "moved")
	})

	t.Run("ffmpeg-faststart", func(t *testing.T) {
		needProgram(t, "ffmpeg")
		require.NoError(t, os.Mkdir(m.Path("video"), 0o755))
		run(t, m.Path("video"), "ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=duration=3:size=320x240:rate=25",
			"-f", "lavfi", "-i", "sine=duration=3", "-c:v", "mpeg4", "-c:a", "aac", "-shortest", "clip.mp4")
		run(t, m.Path("video"), "ffmpeg", "-loglevel", "error", "-i", "clip.mp4", "-c", "copy", "-movflags", "+faststart", "fast.mp4")
		flush(t, m)
		requireBucketMatches(t, m, "video")
		fast := []byte(bucketObjects(t, store, "video/fast.mp4")["video/fast.mp4"])
		require.Equal(t, []string{"ftyp", "moov"}, topBoxes(fast)[:2], "faststart puts moov before the media data")
		require.Contains(t, topBoxes(fast), "mdat")
	})
}

// topBoxes lists the top-level box types of an MP4 file.
func topBoxes(b []byte) []string {
	var types []string
	for len(b) >= 8 {
		size := uint64(binary.BigEndian.Uint32(b))
		types = append(types, string(b[4:8]))
		if size == 1 && len(b) >= 16 {
			size = binary.BigEndian.Uint64(b[8:])
		}
		if size < 8 || size > uint64(len(b)) {
			break
		}
		b = b[size:]
	}
	return types
}

// TestSyncImport: a bucket written by another tool (s3fs-style metadata) is listed, read and
// edited in place through a sync mount, and the edit reaches the bucket (Y1-Y3, Y7).
func TestSyncImport(t *testing.T) {
	srv, store := harness.NewServer(t)
	ctx := context.Background()
	big := bytes.Repeat([]byte("x"), 3<<20)
	put := func(key string, body []byte, meta map[string]string) {
		_, err := store.Put(ctx, key, bytes.NewReader(body), int64(len(body)), s3.WriteOptions{Metadata: meta})
		require.NoError(t, err)
	}
	put("docs/a.txt", []byte("alpha\n"), map[string]string{"mode": "33216", "uid": "1234", "gid": "5678", "mtime": "1700000000"})
	put("docs/big.bin", big, nil)
	put("docs/sub/deep.txt", []byte("deep\n"), nil)
	put("docs/ln", []byte("a.txt"), map[string]string{"mode": "41471"})
	m := syncMount(t, srv, store, t.TempDir())

	entries, err := os.ReadDir(m.Path("docs"))
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	require.Equal(t, []string{"a.txt", "big.bin", "ln", "sub"}, names)
	b, err := os.ReadFile(m.Path("docs/a.txt"))
	require.NoError(t, err)
	require.Equal(t, "alpha\n", string(b))
	b, err = os.ReadFile(m.Path("docs/big.bin"))
	require.NoError(t, err)
	require.True(t, bytes.Equal(big, b), "a large file streams from the bucket (Y2)")

	var st syscall.Stat_t
	require.NoError(t, syscall.Stat(m.Path("docs/a.txt"), &st))
	require.Equal(t, uint32(0o100700), st.Mode, "s3fs's mode is imported (Y3)")
	require.Equal(t, uint32(1234), st.Uid)
	require.Equal(t, uint32(5678), st.Gid)
	require.Equal(t, int64(1700000000), st.Mtim.Sec)
	target, err := os.Readlink(m.Path("docs/ln"))
	require.NoError(t, err)
	require.Equal(t, "a.txt", target)

	// Edit the large file in place: a seek-back write in the middle.
	f, err := os.OpenFile(m.Path("docs/big.bin"), os.O_RDWR, 0)
	require.NoError(t, err)
	_, err = f.WriteAt([]byte("EDIT"), 1<<20)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	copy(big[1<<20:], "EDIT")
	flush(t, m)
	got := bucketObjects(t, store, "docs/big.bin")["docs/big.bin"]
	require.True(t, got == string(big), "the edited file is uploaded whole")
	info, err := store.Head(ctx, "docs/a.txt")
	require.NoError(t, err)
	require.Equal(t, "1234", info.Metadata["uid"], "an unchanged file is not rewritten")
}
