package conformance

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/conformance/harness"
)

// crashContent is the final content of file i of the crash test. Sizes vary from a few bytes
// to a few MiB, so some uploads are multipart when the upload part size is small.
func crashContent(i int) []byte {
	n := (i*7919)%(3<<20) + 1
	b := make([]byte, n)
	for j := range b {
		b[j] = byte(i + j/4096)
	}
	return b
}

// writeCrashFiles writes files until it fails (the mount is killed) and sends the index of
// every file whose close returned. Each file is written in chunks and its first bytes are
// rewritten at the end (a seek-back write), so a torn copy differs from every closed state.
func writeCrashFiles(dir string, closed chan<- int) {
	defer close(closed)
	// One file stays open and keeps changing: it must never be the reason a closed one is lost.
	open, err := os.Create(filepath.Join(dir, "never-closed"))
	if err != nil {
		return
	}
	defer open.Close()
	for i := 0; ; i++ {
		want := crashContent(i)
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("f%04d", i)))
		if err != nil {
			return
		}
		junk := bytes.Repeat([]byte{0xee}, min(len(want), 512))
		ok := true
		if _, err := f.Write(junk); err != nil {
			ok = false
		}
		for off := len(junk); ok && off < len(want); off += 64 << 10 {
			if _, err := f.WriteAt(want[off:min(off+64<<10, len(want))], int64(off)); err != nil {
				ok = false
			}
		}
		if ok {
			if _, err := f.WriteAt(want[:len(junk)], 0); err != nil {
				ok = false
			}
		}
		if _, err := open.Write(want[:min(len(want), 100)]); err != nil {
			ok = false
		}
		if f.Close() != nil || !ok {
			return
		}
		closed <- i
	}
}

// TestSyncKillDuringWrites kills the mount with SIGKILL while a program writes many files and
// uploads run, remounts the same sync dir, and checks that every file whose close returned is
// intact locally and reaches the bucket, and that the bucket ends equal to the mount: nothing
// closed is lost and nothing is uploaded torn (Y4, Y6; SYNC.md invariants 1-7).
func TestSyncKillDuringWrites(t *testing.T) {
	for _, killAfter := range []int{3, 25, 60} {
		t.Run(fmt.Sprintf("after-%d-closes", killAfter), func(t *testing.T) {
			srv, store := harness.NewServer(t)
			syncDir := t.TempDir()
			m := syncMount(t, srv, store, syncDir, "--write-back-delay", "0", "--write-part-size", "5242880")
			require.NoError(t, os.Mkdir(m.Path("crash"), 0o755))
			closed := make(chan int)
			go writeCrashFiles(m.Path("crash"), closed)
			var done []int
			for i := range closed {
				done = append(done, i)
				if len(done) == killAfter {
					m.Kill(t)
				}
			}
			require.GreaterOrEqual(t, len(done), killAfter)
			m.Unmount(t) // detach the dead mount's directory

			m2 := syncMount(t, srv, store, syncDir, "--write-back-delay", "0")
			for _, i := range done {
				b, err := os.ReadFile(m2.Path(fmt.Sprintf("crash/f%04d", i)))
				require.NoError(t, err, "file %d was closed before the kill", i)
				require.True(t, bytes.Equal(crashContent(i), b), "file %d was closed before the kill but differs after remount", i)
			}
			flush(t, m2)
			requireBucketMatches(t, m2, "crash")
		})
	}
}

// TestSyncKillAfterFsync kills the mount with SIGKILL while programs still hold files open
// that they fsync'd but never closed: a file grown and rewritten in place, and a file cut
// shorter, each fsync'd and then written again without a sync. After a remount each holds at
// least what its last fsync covered, any byte beyond is one the program wrote, and both reach
// the bucket as they are (Y4: fsync'd means durable, not only closed; SYNC.md invariant 2).
func TestSyncKillAfterFsync(t *testing.T) {
	srv, store := harness.NewServer(t)
	syncDir := t.TempDir()
	m := syncMount(t, srv, store, syncDir, "--write-back-delay", "0")
	require.NoError(t, os.Mkdir(m.Path("fs"), 0o755))

	// grown: 3 MiB written in 64 KiB chunks, a region in the middle rewritten, fsync'd, then
	// 1 MiB more written after the sync.
	grownWant := fsyncContent(11, 3<<20-5)
	grown, err := os.Create(m.Path("fs/grown"))
	require.NoError(t, err)
	defer grown.Close()
	for off := 0; off < len(grownWant); off += 64 << 10 {
		_, err := grown.WriteAt(bytes.Repeat([]byte{0xaa}, min(64<<10, len(grownWant)-off)), int64(off))
		require.NoError(t, err)
	}
	_, err = grown.WriteAt(grownWant, 0)
	require.NoError(t, err)
	require.NoError(t, grown.Sync())
	copy(grownWant[1<<20:], bytes.Repeat([]byte{0x5c}, 8192)) // in place: the size stays
	_, err = grown.WriteAt(grownWant[1<<20:1<<20+8192], 1<<20)
	require.NoError(t, err)
	require.NoError(t, grown.Sync())
	after := fsyncContent(12, 1<<20)
	_, err = grown.WriteAt(after, int64(len(grownWant)))
	require.NoError(t, err)

	// cut: written and closed, reopened, cut to 1000 bytes and fsync'd, then written past
	// the cut without a sync.
	cutFull := fsyncContent(13, 200<<10)
	require.NoError(t, os.WriteFile(m.Path("fs/cut"), cutFull, 0o644))
	cut, err := os.OpenFile(m.Path("fs/cut"), os.O_RDWR, 0)
	require.NoError(t, err)
	defer cut.Close()
	require.NoError(t, cut.Truncate(1000))
	require.NoError(t, cut.Sync())
	cutWant := cutFull[:1000]
	tail := bytes.Repeat([]byte{0x77}, 3000)
	_, err = cut.WriteAt(tail, 5000)
	require.NoError(t, err)

	m.Kill(t)
	grown.Close() // on a dead mount: only so the mount point is not busy
	cut.Close()
	m.Unmount(t)

	m2 := syncMount(t, srv, store, syncDir, "--write-back-delay", "0")
	got, err := os.ReadFile(m2.Path("fs/grown"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(got), len(grownWant), "grown: shorter than its last fsync")
	require.True(t, bytes.Equal(grownWant, got[:len(grownWant)]), "grown: what its last fsync covered differs after the kill")
	require.True(t, bytes.Equal(after[:len(got)-len(grownWant)], got[len(grownWant):]), "grown: bytes past the fsync'd size that no program wrote")

	got, err = os.ReadFile(m2.Path("fs/cut"))
	require.NoError(t, err)
	switch len(got) {
	case len(cutWant): // the write after the sync did not survive
		require.True(t, bytes.Equal(cutWant, got), "cut: differs from its fsync'd state")
	case 8000: // it did: zeros between the cut and the write
		want := append(append(append([]byte{}, cutWant...), make([]byte, 4000)...), tail...)
		require.True(t, bytes.Equal(want, got), "cut: the write after the sync reached the file torn")
	default:
		t.Fatalf("cut: %d bytes after the kill; its fsync'd state has %d, with the later write 8000", len(got), len(cutWant))
	}
	flush(t, m2)
	requireBucketMatches(t, m2, "fs")
}

// fsyncContent is n bytes that differ with seed and along the file, so a misplaced or torn
// range shows.
func fsyncContent(seed, n int) []byte {
	b := make([]byte, n)
	for j := range b {
		b[j] = byte(seed*31 + j/1000 + j%7)
	}
	return b
}
