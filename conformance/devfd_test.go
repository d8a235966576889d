package conformance

import (
	"context"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/conformance/harness"
	"github.com/mount-s3/mount-s3/impl/s3"
)

// Mountpoint's Kubernetes CSI driver opens /dev/fuse, mounts it on the pod's path itself,
// and runs `mount-s3 BUCKET /dev/fd/3 --foreground` with the descriptor as fd 3; it unmounts
// from outside when the pod goes. The mount must serve that connection in both modes and exit
// cleanly (status 0) once the caller unmounts.
func TestDevFDMount(t *testing.T) {
	for _, mode := range []string{"streaming", "sync"} {
		t.Run(mode, func(t *testing.T) {
			srv, store := harness.NewServer(t)
			ctx := context.Background()
			_, err := store.Put(ctx, "in/bucket.txt", strings.NewReader("from the bucket"), 15, s3.WriteOptions{})
			require.NoError(t, err)
			opts := harness.Options{DevFD: true, Args: []string{"--user-agent-prefix", "s3-csi-driver/2.0"}}
			if mode == "sync" {
				opts.Args = append(opts.Args, "--sync-dir", t.TempDir(), "--write-back-delay", "0")
			}
			m := harness.MountServer(t, srv, store, opts)

			b, err := os.ReadFile(m.Path("in/bucket.txt"))
			require.NoError(t, err)
			require.Equal(t, "from the bucket", string(b))
			require.NoError(t, os.WriteFile(m.Path("written.txt"), []byte("through the descriptor"), 0o644))
			if mode == "sync" {
				out, err := harness.Flush(t, m.Dir)
				require.NoError(t, err, "%s", out)
			}
			body, _, err := store.Get(ctx, "written.txt", 0, -1, "")
			require.NoError(t, err)
			got, _ := io.ReadAll(body)
			body.Close()
			require.Equal(t, "through the descriptor", string(got))

			// The caller unmounts; mount-s3 must notice the end of the connection and exit 0
			// (the harness's cleanup checks the status).
			require.NoError(t, syscall.Unmount(m.Dir, 0))
			require.True(t, m.Exited(15*time.Second), "mount-s3 did not exit after its caller unmounted:\n%s", m.Logs())
		})
	}
}

// A /dev/fd/N that is not an open /dev/fuse connection is refused with one line before
// anything starts.
func TestDevFDNotFUSE(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "notfuse")
	require.NoError(t, err)
	defer f.Close()
	cmd := exec.Command(harness.Binary(t), "--foreground", "bucket", "/dev/fd/3")
	cmd.ExtraFiles = []*os.File{f}
	out, err := cmd.CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(out), "descriptor 3 is not /dev/fuse")
	require.Equal(t, 1, strings.Count(strings.TrimSpace(string(out)), "\n")+1, "one line: %s", out)

	out, err = exec.Command(harness.Binary(t), "--foreground", "bucket", "/dev/fd/9").CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(out), "descriptor 9 is not open")
}
