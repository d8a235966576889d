package conformance

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/conformance/harness"
	"github.com/mount-s3/mount-s3/mount"
)

// /etc/fstab lines in both forms, mounted by mount(8) through the helpers `make install` puts
// in /sbin (issue 15): Mountpoint's type mount-s3 with an s3:// source, and type
// fuse.mount-s3, each with the options Mountpoint recommends (_netdev, nofail, nosuid, nodev).
// The test links the helpers to the binary under test for its duration, so it runs only as
// root and where no helper is installed already.
func TestFstabMount(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("mount(8) with a helper in /sbin needs root")
	}
	if _, err := exec.LookPath("mount"); err != nil {
		t.Skip("no mount(8)")
	}
	bin := harness.Binary(t)
	for _, name := range []string{"/sbin/mount.mount-s3", "/sbin/mount.fuse.mount-s3"} {
		if _, err := os.Lstat(name); err == nil {
			t.Skipf("%s is installed already; not replacing it", name)
		}
		require.NoError(t, os.Symlink(bin, name))
		t.Cleanup(func() { os.Remove(name) })
	}
	base := t.TempDir()
	var fstab string
	var dirs []string
	for i, form := range []struct{ source, fstype string }{{"s3://fstab-bucket/", "mount-s3"}, {"fstab-bucket", "fuse.mount-s3"}} {
		dir := filepath.Join(base, fmt.Sprintf("mnt%d", i))
		require.NoError(t, os.Mkdir(dir, 0o755))
		dirs = append(dirs, dir)
		fstab += fmt.Sprintf("%s %s %s _netdev,nosuid,nodev,nofail,rw,allow-delete,embedded-store=%s 0 0\n",
			form.source, dir, form.fstype, filepath.Join(base, fmt.Sprintf("store%d", i)))
	}
	file := filepath.Join(base, "fstab")
	require.NoError(t, os.WriteFile(file, []byte(fstab), 0o644))
	t.Cleanup(func() {
		for _, d := range dirs {
			for i := 0; i < 50 && syscall.Unmount(d, 0) == syscall.EBUSY; i++ {
				time.Sleep(100 * time.Millisecond)
			}
		}
	})

	out, err := exec.Command("mount", "-T", file, "-a").CombinedOutput()
	require.NoError(t, err, "mount -T %s -a:\n%s\n%s", file, out, fstab)
	for _, d := range dirs {
		mounted, err := mount.IsMountPoint(d)
		require.NoError(t, err)
		require.True(t, mounted, "%s not mounted by mount -a", d)
		require.NoError(t, os.WriteFile(filepath.Join(d, "hello"), []byte("from fstab"), 0o644))
		b, err := os.ReadFile(filepath.Join(d, "hello"))
		require.NoError(t, err)
		require.Equal(t, "from fstab", string(b))
		require.NoError(t, os.Remove(filepath.Join(d, "hello")), "allow-delete came through -o")
		out, err := exec.Command("umount", d).CombinedOutput()
		require.NoError(t, err, "umount %s: %s", d, out)
	}
}

// The systemd unit of docs/examples runs as written: its ExecStart (with the bucket served by
// an embedded store) mounts and serves, and its ExecStop unmounts and ends the process.
func TestSystemdUnitExample(t *testing.T) {
	b, err := os.ReadFile("../docs/examples/mount-s3.service")
	require.NoError(t, err)
	var start, stop []string
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "ExecStart="); ok {
			start = strings.Fields(v)
		}
		if v, ok := strings.CutPrefix(line, "ExecStop="); ok {
			stop = strings.Fields(v)
		}
	}
	require.NotEmpty(t, start)
	require.NotEmpty(t, stop)
	require.Equal(t, "/usr/local/bin/mount-s3", start[0])
	dir := t.TempDir()
	for i, a := range start {
		if a == "/mnt/data" {
			start[i] = dir
		}
	}
	for i, a := range stop {
		if a == "/mnt/data" {
			stop[i] = dir
		}
	}
	args := append(append([]string{}, start[1:]...), "--embedded-store", t.TempDir())
	cmd := exec.Command(harness.Binary(t), args...)
	logs := &strings.Builder{}
	cmd.Stderr = logs
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		syscall.Unmount(dir, syscall.MNT_DETACH)
		cmd.Process.Kill()
	})
	eventually(t, 10*time.Second, "the unit's mount", func() bool { m, _ := mount.IsMountPoint(dir); return m })
	require.NoError(t, os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644))
	out, err := exec.Command(stop[0], stop[1:]...).CombinedOutput()
	require.NoError(t, err, "ExecStop: %s", out)
	select {
	case err := <-exited:
		require.NoError(t, err, "the process after ExecStop:\n%s", logs)
	case <-time.After(15 * time.Second):
		t.Fatalf("the process did not end after ExecStop:\n%s", logs)
	}
}
