package conformance

import (
	"bytes"
	"context"
	"fmt"
	"os"
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
