package conformance

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/conformance/harness"
	"github.com/mount-s3/mount-s3/impl/s3"
)

// READDIRPLUS (mount/adapter.go) hands the kernel an inode with each entry, which the kernel
// counts as a lookup and forgets later. After an `ls -l` of a directory larger than one
// readdir buffer, after the kernel dropped its dentries and inodes, and after the attributes
// expired, every entry must still list, stat and read as it is: an entry the core had not
// counted would be unknown to it by then, and one forgotten too early would fail its stat.
func TestLsLongThenStatAgain(t *testing.T) {
	for _, mode := range []string{"streaming", "sync"} {
		t.Run(mode, func(t *testing.T) {
			srv, store := harness.NewServer(t)
			ctx := context.Background()
			const n = 300
			for i := 0; i < n; i++ {
				_, err := store.Put(ctx, fmt.Sprintf("d/f%03d", i), bytes.NewReader(bytes.Repeat([]byte{'x'}, i)), int64(i), s3.WriteOptions{})
				require.NoError(t, err)
			}
			_, err := store.Put(ctx, "d/sub/x", bytes.NewReader([]byte("x")), 1, s3.WriteOptions{})
			require.NoError(t, err)
			var args []string
			if mode == "sync" {
				args = []string{"--sync-dir", t.TempDir(), "--write-back-delay", "1h"}
			}
			m := harness.MountServer(t, srv, store, harness.Options{Args: args})

			lsLong := func(round string) {
				entries, err := os.ReadDir(m.Path("d"))
				require.NoError(t, err, round)
				require.Len(t, entries, n+1, round)
				for _, e := range entries {
					info, err := os.Lstat(m.Path("d/" + e.Name()))
					require.NoError(t, err, "%s: lstat %s", round, e.Name())
					if e.Name() == "sub" {
						require.True(t, e.IsDir() && info.IsDir(), "%s: sub is a directory", round)
						continue
					}
					var i int
					_, err = fmt.Sscanf(e.Name(), "f%03d", &i)
					require.NoError(t, err, round)
					require.True(t, info.Mode().IsRegular() && e.Type().IsRegular(), "%s: %s is a file", round, e.Name())
					require.EqualValues(t, i, info.Size(), "%s: size of %s", round, e.Name())
				}
			}
			lsLong("first ls -l")
			// Opened while its dentry from READDIRPLUS is still valid, so without a LOOKUP of
			// its own: only READDIRPLUS's count keeps the inode known to the core when the
			// fstat below, after the attributes expired, asks for it by number.
			held, err := os.Open(m.Path("d/f150"))
			require.NoError(t, err)
			defer held.Close()
			// The kernel forgets every inode nothing holds (FORGET for each), then the
			// attributes the mount handed out expire.
			require.NoError(t, os.WriteFile("/proc/sys/vm/drop_caches", []byte("2\n"), 0))
			time.Sleep(1200 * time.Millisecond)
			info, err := held.Stat()
			require.NoError(t, err, "fstat of a file opened right after ls -l")
			require.EqualValues(t, 150, info.Size())
			lsLong("after the kernel forgot")
			time.Sleep(1200 * time.Millisecond)
			for _, i := range []int{0, 1, 150, n - 1} {
				got, err := os.ReadFile(m.Path(fmt.Sprintf("d/f%03d", i)))
				require.NoError(t, err)
				require.Equal(t, bytes.Repeat([]byte{'x'}, i), got)
			}
		})
	}
}

// Y3 at the first stat: right after a sync mount lists a directory, while the background
// import is still reading the objects' metadata, a stat must already show the bucket's
// attributes; above all a symlink must never reach the kernel as a regular file, a type the
// kernel would then keep for the inode.
func TestSyncFirstStatShowsBucketAttributes(t *testing.T) {
	srv, store := harness.NewServer(t)
	ctx := context.Background()
	const n = 200
	for i := 0; i < n; i++ {
		target := fmt.Sprintf("target-%03d", i)
		_, err := store.Put(ctx, fmt.Sprintf("d/ln%03d", i), bytes.NewReader([]byte(target)), int64(len(target)),
			s3.WriteOptions{Metadata: map[string]string{"mode": "41471"}}) // 0120777
		require.NoError(t, err)
		_, err = store.Put(ctx, fmt.Sprintf("d/run%03d.sh", i), bytes.NewReader([]byte("#!/bin/sh\n")), 10,
			s3.WriteOptions{Metadata: map[string]string{"mode": "33261", "uid": "1234"}}) // 0100755
		require.NoError(t, err)
	}
	m := harness.MountServer(t, srv, store, harness.Options{Args: []string{"--sync-dir", t.TempDir(), "--write-back-delay", "1h"}})
	entries, err := os.ReadDir(m.Path("d"))
	require.NoError(t, err)
	require.Len(t, entries, 2*n)
	for i := n - 1; i >= 0; i-- { // the background import goes in order: start from its end
		ln := m.Path(fmt.Sprintf("d/ln%03d", i))
		info, err := os.Lstat(ln)
		require.NoError(t, err)
		require.Equal(t, os.ModeSymlink, info.Mode().Type(), "%s", ln)
		target, err := os.Readlink(ln)
		require.NoError(t, err)
		require.Equal(t, fmt.Sprintf("target-%03d", i), target)
		var st syscall.Stat_t
		require.NoError(t, syscall.Lstat(m.Path(fmt.Sprintf("d/run%03d.sh", i)), &st))
		require.Equal(t, uint32(0o100755), st.Mode, "run%03d.sh", i)
		require.Equal(t, uint32(1234), st.Uid)
	}
}
