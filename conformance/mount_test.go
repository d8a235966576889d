package conformance

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mount-s3/mount-s3/conformance/harness"
)

// S9: atime = ctime = mtime = Last-Modified; owner is the mounting user; inode numbers are
// stable for the life of the mount.
func TestAttributesS9(t *testing.T) {
	m := harness.New(t, harness.Options{})
	m.Put(t, "d/f", []byte("abc"))
	info, err := m.Store.Head(context.Background(), "d/f")
	if err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(m.Path("d/f"), &st); err != nil {
		t.Fatal(err)
	}
	mtime := time.Unix(st.Mtim.Sec, st.Mtim.Nsec)
	if d := mtime.Sub(info.LastModified); math.Abs(float64(d)) > float64(time.Second) {
		t.Errorf("mtime %v, Last-Modified %v", mtime, info.LastModified)
	}
	if st.Atim != st.Mtim || st.Ctim != st.Mtim {
		t.Errorf("atime %v ctime %v mtime %v differ", st.Atim, st.Ctim, st.Mtim)
	}
	if st.Uid != uint32(os.Getuid()) || st.Gid != uint32(os.Getgid()) {
		t.Errorf("owner %d:%d, want the mounting user", st.Uid, st.Gid)
	}
	ino := st.Ino
	if _, err := getdents(m.Path("d")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // past the TTL: the kernel looks the name up again
	if err := syscall.Stat(m.Path("d/f"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Ino != ino {
		t.Errorf("inode changed from %d to %d", ino, st.Ino)
	}
}

// S1: a large object reads back exactly, sequentially and at odd offsets.
func TestLargeReadS1(t *testing.T) {
	m := harness.New(t, harness.Options{})
	data := make([]byte, 24<<20+12345)
	rand.Read(data)
	m.Put(t, "big.bin", data)

	got, err := os.ReadFile(m.Path("big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("sequential read differs (got %d bytes, want %d)", len(got), len(data))
	}

	f, err := os.Open(m.Path("big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, at := range []struct{ off, n int64 }{{0, 1}, {4095, 3}, {8<<20 - 1, 2}, {int64(len(data)) - 7, 7}, {12345678, 1 << 20}, {1, 131073}} {
		buf := make([]byte, at.n)
		n, err := f.ReadAt(buf, at.off)
		if err != nil && err != io.EOF {
			t.Fatalf("pread(%d, %d): %v", at.off, at.n, err)
		}
		if !bytes.Equal(buf[:n], data[at.off:at.off+int64(n)]) || int64(n) != at.n {
			t.Fatalf("pread(%d, %d) wrong (%d bytes)", at.off, at.n, n)
		}
	}
}

// The mount honours its own read-only flag and unmounts cleanly while nothing is open.
func TestReadOnlyMount(t *testing.T) {
	m := harness.New(t, harness.Options{ReadOnly: true})
	m.Put(t, "f", []byte("x"))
	_, err := os.Create(m.Path("g"))
	if errnoOf(err) != syscall.EROFS {
		t.Fatalf("create on a read-only mount: %v, want EROFS", err)
	}
}

// --auto-unmount: a mount whose process is killed does not stay behind as a dead mount point.
func TestAutoUnmountAfterKill(t *testing.T) {
	m := harness.New(t, harness.Options{Args: []string{"--auto-unmount"}})
	m.Kill(t)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if mounted, _ := isMounted(m.Dir); !mounted {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("still mounted 5 s after the mount process was killed")
		}
	}
}

func isMounted(dir string) (bool, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false, err
	}
	return bytes.Contains(b, []byte(" "+dir+" ")), nil
}

// SIGTERM unmounts cleanly; while a file is open the mount is busy, stays mounted and says
// so, and a later signal succeeds.
func TestSignalUnmount(t *testing.T) {
	m := harness.New(t, harness.Options{})
	m.Put(t, "f", []byte("x"))
	f, err := os.Open(m.Path("f"))
	if err != nil {
		t.Fatal(err)
	}
	m.Signal(t, syscall.SIGTERM)
	time.Sleep(300 * time.Millisecond)
	if mounted, _ := isMounted(m.Dir); !mounted {
		t.Fatal("unmounted while a file was open")
	}
	if !strings.Contains(m.Logs(), "busy") {
		t.Errorf("no log line says the mount is busy:\n%s", m.Logs())
	}
	f.Close()
	m.Signal(t, syscall.SIGTERM)
	if !m.Exited(5 * time.Second) {
		t.Fatal("mount-s3 still running 5 s after SIGTERM")
	}
	if mounted, _ := isMounted(m.Dir); mounted {
		t.Fatal("still mounted after the mount process exited")
	}
}

// --cache: data read once is kept on disk across mounts, and a changed object is never
// served from stale blocks.
func TestDataCache(t *testing.T) {
	cacheDir := t.TempDir()
	srv, store := harness.NewServer(t)
	args := []string{"--cache", cacheDir, "--metadata-ttl", "0"}
	data := make([]byte, 3<<20+17)
	rand.Read(data)
	{
		m := harness.MountServer(t, srv, store, harness.Options{Args: args})
		m.Put(t, "f", data)
		if got, err := os.ReadFile(m.Path("f")); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("first read: %v", err)
		}
		m.Unmount(t)
	}
	blocks := 0
	filepath.WalkDir(cacheDir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.Contains(p, "blocks") {
			blocks++
		}
		return nil
	})
	if blocks == 0 {
		t.Fatal("nothing was cached on disk")
	}
	m := harness.MountServer(t, srv, store, harness.Options{Args: args})
	if got, err := os.ReadFile(m.Path("f")); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read on a second mount over the same cache: %v", err)
	}
	changed := bytes.Repeat([]byte("new"), 1000)
	m.Put(t, "f", changed)
	if got, err := os.ReadFile(m.Path("f")); err != nil || !bytes.Equal(got, changed) {
		t.Fatalf("read after the object changed: %d bytes, %v; want the new object", len(got), err)
	}
}
