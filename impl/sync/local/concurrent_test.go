package local

import (
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

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

// A stat that races the close of a written file must report the written size: the close
// commits the size to the record and then drops the open file's live size, and a stat that
// read the record before the commit and looked for the open file after the drop answered the
// size before the writes. The kernel believes a size it is told after its own writes, and a
// reader of the just-closed file then got nothing or a prefix (found by the soak test). The
// stat waits between its two reads for the close to finish, or 100 ms if the close cannot.
func TestStatDuringCloseSeesTheWrittenSize(t *testing.T) {
	l, _ := newLayer(t)
	data := make([]byte, 4096)
	_, h, err := l.CreateOpen("f", 0o644, 0, 0)
	require.NoError(t, err)
	require.NoError(t, l.SyncNamespace()) // the record, which Stat reads (not the pending create)
	_, err = h.WriteAt(data, 0)
	require.NoError(t, err)
	closed := make(chan error, 1)
	statHook = func() {
		go func() { closed <- h.Close() }()
		select {
		case err := <-closed:
			require.NoError(t, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	info, err := l.Stat("f")
	statHook = func() {}
	require.NoError(t, err)
	require.Equal(t, int64(len(data)), info.Size, "a stat during the close")
	select {
	case err := <-closed:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("close did not return")
	}
	info, err = l.Stat("f")
	require.NoError(t, err)
	require.Equal(t, int64(len(data)), info.Size, "after the close")
}
