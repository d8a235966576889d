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
