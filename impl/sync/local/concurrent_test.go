package local

import (
	"fmt"
	"io"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// Writers, snapshots, syncs, renames and stats at once: for the race detector and the lock
// order (Layer.mu, then openFile.mu, then bbolt's writer lock).
func TestConcurrentUse(t *testing.T) {
	l, _ := newLayer(t)
	const n = 4
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		p := fmt.Sprintf("f%d", i)
		writeFile(t, l, p, "")
		wg.Add(1)
		go func() {
			defer wg.Done()
			h, err := l.BeginWrite(p)
			require.NoError(t, err)
			for j := 0; j < 20; j++ {
				_, err := h.WriteAt([]byte("x"), int64(j))
				require.NoError(t, err)
				if j%5 == 0 {
					require.NoError(t, l.Sync(p))
				}
			}
			require.NoError(t, h.Close())
		}()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 10; j++ {
				rc, _, size, err := l.Snapshot(p)
				require.NoError(t, err)
				b, _ := io.ReadAll(rc)
				rc.Close()
				require.Len(t, b, int(size))
				_, err = l.Stat(p)
				require.NoError(t, err)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for j := 0; j < 10; j++ {
			_, _ = l.Mkdir("d", 0o755, 0, 0)
			require.NoError(t, l.Rename("d", "e"))
			require.NoError(t, l.Rmdir("e"))
		}
	}()
	wg.Wait()
	for i := 0; i < n; i++ {
		require.Equal(t, "xxxxxxxxxxxxxxxxxxxx", readFile(t, l, fmt.Sprintf("f%d", i)))
	}
}
