package conformance

import (
	"bytes"
	"context"
	"net"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/mount-s3/mount-s3/conformance/harness"
	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/spec/posixmeta"
)

// Special files (FIFOs, devices, sockets) in sync mode: made, listed, stat'ed, renamed and
// removed as on a local disk; in the bucket each is an empty object whose s3fs-style metadata
// says what it is, and a new sync dir over that bucket imports them as the same (issue 17).
func TestSyncSpecialFiles(t *testing.T) {
	srv, store := harness.NewServer(t)
	m := syncMount(t, srv, store, t.TempDir())

	require.NoError(t, unix.Mkfifo(m.Path("fifo"), 0o640))
	require.NoError(t, unix.Mknod(m.Path("tty"), unix.S_IFCHR|0o600, int(unix.Mkdev(4, 1))))
	require.NoError(t, unix.Mknod(m.Path("disk"), unix.S_IFBLK|0o640, int(unix.Mkdev(8, 17))))
	l, err := net.Listen("unix", m.Path("sock"))
	require.NoError(t, err)
	l.Close() // the listener unlinks its socket file on close: bind once more and keep it
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	require.NoError(t, err)
	require.NoError(t, unix.Bind(fd, &unix.SockaddrUnix{Name: m.Path("sock")}))
	unix.Close(fd)

	want := map[string]struct {
		typ  uint32
		perm uint32
		rdev uint64
	}{
		"fifo": {unix.S_IFIFO, 0o640, 0}, "tty": {unix.S_IFCHR, 0o600, unix.Mkdev(4, 1)},
		"disk": {unix.S_IFBLK, 0o640, unix.Mkdev(8, 17)}, "sock": {unix.S_IFSOCK, 0, 0},
	}
	checkTypes := func(m *harness.Mount) {
		t.Helper()
		for name, w := range want {
			var st unix.Stat_t
			require.NoError(t, unix.Lstat(m.Path(name), &st), name)
			require.Equal(t, w.typ, st.Mode&unix.S_IFMT, "%s: type", name)
			if w.perm != 0 {
				require.Equal(t, w.perm, st.Mode&0o7777, "%s: mode", name)
			}
			require.Equal(t, w.rdev, st.Rdev, "%s: rdev", name)
			require.Zero(t, st.Size, name)
		}
		// readdir's d_type: an imported entry is listed as a file until its metadata is
		// recorded, which the lookups above started (docs/SYNC-MODE.md).
		want := map[string]os.FileMode{"fifo": os.ModeNamedPipe, "tty": os.ModeDevice | os.ModeCharDevice,
			"disk": os.ModeDevice, "sock": os.ModeSocket}
		require.Eventually(t, func() bool {
			ents, err := os.ReadDir(m.Path(""))
			require.NoError(t, err)
			for _, e := range ents {
				if w, ok := want[e.Name()]; ok && e.Type() != w {
					return false
				}
			}
			return true
		}, 5*time.Second, 20*time.Millisecond, "readdir's d_type")
	}
	checkTypes(m)

	// A FIFO works as a FIFO: the kernel keeps its I/O local.
	done := make(chan []byte)
	go func() {
		b, _ := os.ReadFile(m.Path("fifo"))
		done <- b
	}()
	require.NoError(t, os.WriteFile(m.Path("fifo"), []byte("through the pipe"), 0))
	require.Equal(t, "through the pipe", string(<-done))

	require.NoError(t, os.Chmod(m.Path("fifo"), 0o600))
	require.NoError(t, os.Chown(m.Path("fifo"), 1234, 5678))
	want["fifo"] = struct {
		typ  uint32
		perm uint32
		rdev uint64
	}{unix.S_IFIFO, 0o600, 0}
	require.NoError(t, os.Mkdir(m.Path("d"), 0o755))
	require.NoError(t, os.Rename(m.Path("disk"), m.Path("d/disk")))
	require.NoError(t, os.Rename(m.Path("d/disk"), m.Path("disk")))
	require.NoError(t, unix.Mkfifo(m.Path("gone"), 0o644))
	require.NoError(t, os.Remove(m.Path("gone")))
	checkTypes(m)
	flush(t, m)

	ctx := context.Background()
	for key, meta := range map[string]map[string]string{
		"fifo": {"mode": "4480", "uid": "1234", "gid": "5678"}, // 010600
		"tty":  {"mode": "8576", "rdev": "1025"},               // 020600, 4:1
		"disk": {"mode": "24992", "rdev": "2065"},              // 060640, 8:17
	} {
		body, info, err := store.Get(ctx, key, 0, -1, "")
		require.NoError(t, err, key)
		body.Close()
		require.Zero(t, info.Size, key)
		for k, v := range meta {
			require.Equal(t, v, info.Metadata[k], "%s: %s in %v", key, k, info.Metadata)
		}
	}
	_, err = store.Head(ctx, "gone")
	require.ErrorIs(t, err, s3.ErrNotFound)
	sock, err := store.Head(ctx, "sock")
	require.NoError(t, err)
	require.Equal(t, uint32(unix.S_IFSOCK), uint32(mustAtoi(t, sock.Metadata["mode"]))&unix.S_IFMT)

	// What another client (or a lost sync dir) finds in the bucket reads back the same.
	m.Unmount(t)
	other := syncMount(t, srv, store, t.TempDir())
	checkTypes(other)
	var st unix.Stat_t
	require.NoError(t, unix.Lstat(other.Path("fifo"), &st))
	require.Equal(t, uint32(1234), st.Uid)
}

// Extended attributes in sync mode: set, read, listed, replaced and removed as on a local
// disk, kept in the object's metadata as s3fs-fuse keeps them, bounded by S3's 2 KiB.
func TestSyncExtendedAttributes(t *testing.T) {
	srv, store := harness.NewServer(t)
	ctx := context.Background()
	// A file written by s3fs-fuse with an attribute.
	_, err := store.Put(ctx, "theirs", bytes.NewReader([]byte("x")), 1, s3.WriteOptions{Metadata: map[string]string{
		"mode": "33188", "xattr": "%7B%22user.test%22%3A%22dGVzdA%3D%3D%22%7D"}})
	require.NoError(t, err)
	m := syncMount(t, srv, store, t.TempDir())
	p := m.Path("f")
	require.NoError(t, os.WriteFile(p, []byte("data"), 0o644))

	buf := make([]byte, 4096)
	n, err := unix.Getxattr(m.Path("theirs"), "user.test", buf)
	require.NoError(t, err, "an attribute s3fs-fuse stored")
	require.Equal(t, "test", string(buf[:n]))

	require.NoError(t, unix.Setxattr(p, "user.color", []byte("blue"), 0))
	require.NoError(t, unix.Setxattr(p, "user.empty", nil, 0))
	require.ErrorIs(t, unix.Setxattr(p, "user.color", []byte("red"), unix.XATTR_CREATE), syscall.EEXIST)
	require.ErrorIs(t, unix.Setxattr(p, "user.none", []byte("x"), unix.XATTR_REPLACE), syscall.ENODATA)
	require.NoError(t, unix.Setxattr(p, "user.color", []byte("green"), unix.XATTR_REPLACE))
	n, err = unix.Getxattr(p, "user.color", buf)
	require.NoError(t, err)
	require.Equal(t, "green", string(buf[:n]))
	n, err = unix.Listxattr(p, buf)
	require.NoError(t, err)
	require.Equal(t, "user.color\x00user.empty\x00", string(buf[:n]))
	_, err = unix.Getxattr(p, "user.none", buf)
	require.ErrorIs(t, err, syscall.ENODATA)
	require.ErrorIs(t, unix.Removexattr(p, "user.none"), syscall.ENODATA)
	require.ErrorIs(t, unix.Setxattr(p, "user.mount-s3.anything", []byte("x"), 0), syscall.EPERM, "the mount's own names are reserved")
	require.ErrorIs(t, unix.Setxattr(p, "user.big", make([]byte, 1800), 0), syscall.ENOSPC, "past S3's 2 KiB of metadata")
	require.NoError(t, unix.Setxattr(m.Path(""), "user.on-root", []byte("kept locally"), 0))

	require.NoError(t, unix.Setxattr(p, "user.gone", []byte("x"), 0))
	require.NoError(t, unix.Removexattr(p, "user.gone"))
	flush(t, m)
	info, err := store.Head(ctx, "f")
	require.NoError(t, err)
	require.Equal(t, map[string][]byte{"user.color": []byte("green"), "user.empty": {}}, posixmeta.DecodeXattrs(info.Metadata["xattr"]))

	// Only the metadata changes: a copy in place, then a fresh sync dir reads them back.
	require.NoError(t, unix.Removexattr(p, "user.empty"))
	flush(t, m)
	m.Unmount(t)
	other := syncMount(t, srv, store, t.TempDir())
	n, err = unix.Listxattr(other.Path("f"), buf)
	require.NoError(t, err)
	require.Equal(t, "user.color\x00", string(buf[:n]))
	b, err := os.ReadFile(other.Path("f"))
	require.NoError(t, err)
	require.Equal(t, "data", string(b))
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	require.NoError(t, err, s)
	return n
}

// utimensat in sync mode: access and modification times set apart, nanoseconds kept, and
// times before 1970 and after 2038 travel through the bucket (issue 17).
func TestSyncTimes(t *testing.T) {
	srv, store := harness.NewServer(t)
	m := syncMount(t, srv, store, t.TempDir())
	times := map[string]time.Time{
		"old":    time.Date(1969, 7, 20, 20, 17, 40, 123456789, time.UTC),
		"future": time.Date(2100, 1, 1, 0, 0, 0, 1, time.UTC),
	}
	for name, mt := range times {
		require.NoError(t, os.WriteFile(m.Path(name), []byte(name), 0o644))
		at := time.Date(2001, 2, 3, 4, 5, 6, 7, time.UTC)
		require.NoError(t, os.Chtimes(m.Path(name), at, mt))
		var st unix.Stat_t
		require.NoError(t, unix.Stat(m.Path(name), &st))
		require.Equal(t, kernelShows(mt), st.Mtim.Nano(), name)
		require.Equal(t, at.UnixNano(), st.Atim.Nano(), "%s: the access time is its own", name)
	}
	// UTIME_OMIT for the mtime changes the access time alone.
	at := time.Date(2011, 1, 1, 0, 0, 0, 0, time.UTC)
	require.NoError(t, unix.UtimesNanoAt(unix.AT_FDCWD, m.Path("old"), []unix.Timespec{unix.NsecToTimespec(at.UnixNano()), {Nsec: unix.UTIME_OMIT}}, 0))
	var st unix.Stat_t
	require.NoError(t, unix.Stat(m.Path("old"), &st))
	require.Equal(t, at.UnixNano(), st.Atim.Nano())
	require.Equal(t, kernelShows(times["old"]), st.Mtim.Nano())
	flush(t, m)
	m.Unmount(t)

	other := syncMount(t, srv, store, t.TempDir())
	for name, mt := range times {
		require.NoError(t, unix.Stat(other.Path(name), &st))
		require.Equal(t, kernelShows(mt), st.Mtim.Nano(), "%s: read back from the bucket", name)
		b, err := os.ReadFile(other.Path(name))
		require.NoError(t, err)
		require.Equal(t, name, string(b))
	}
	info, err := store.Head(context.Background(), "old")
	require.NoError(t, err)
	require.Equal(t, "-14182940.123456789", info.Metadata["mtime"], "kept to the nanosecond in the bucket")
}

// kernelShows is what stat shows of t: before 1970, the whole second it falls in (the FUSE
// library's conversion cannot carry a fraction there, see mount.kernelTime).
func kernelShows(t time.Time) int64 {
	if t.Unix() < 0 {
		return t.Unix() * 1e9
	}
	return t.UnixNano()
}

// A bucket written by s3fs-fuse: its FIFO and device objects (empty, typed by the mode's
// type bits, the device number in rdev) import as a FIFO and a device.
func TestSyncImportsS3fsSpecialFiles(t *testing.T) {
	srv, store := harness.NewServer(t)
	ctx := context.Background()
	for key, meta := range map[string]map[string]string{
		"dev/fifo": {"mode": "4516", "uid": "1000", "gid": "1000", "mtime": "1700000000"}, // 010644
		"dev/null": {"mode": "8630", "rdev": "259", "uid": "0", "gid": "0"},               // 020666, 1:3
	} {
		_, err := store.Put(ctx, key, bytes.NewReader(nil), 0, s3.WriteOptions{Metadata: meta})
		require.NoError(t, err)
	}
	m := syncMount(t, srv, store, t.TempDir())
	var st unix.Stat_t
	require.NoError(t, unix.Lstat(m.Path("dev/fifo"), &st))
	require.Equal(t, uint32(unix.S_IFIFO|0o644), st.Mode)
	require.Equal(t, uint32(1000), st.Uid)
	require.Equal(t, int64(1700000000), st.Mtim.Sec)
	require.NoError(t, unix.Lstat(m.Path("dev/null"), &st))
	require.Equal(t, uint32(unix.S_IFCHR|0o666), st.Mode)
	require.Equal(t, unix.Mkdev(1, 3), st.Rdev)
	// FUSE mounts are nodev: a device node is kept and shown, never opened through the mount.
	_, err := os.ReadFile(m.Path("dev/null"))
	require.ErrorIs(t, err, syscall.EACCES)
}
