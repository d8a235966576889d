package mount

import (
	"os"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// tgid names the process of any of its threads: the leader by itself, another thread through
// /proc, and a thread that is gone by its own id.
func TestTgidOfLeaderAndOtherThreads(t *testing.T) {
	pid := uint32(os.Getpid())
	require.Equal(t, pid, tgid(pid))

	tid := make(chan uint32)
	go func() {
		// A goroutine locked to a new thread is not the leader.
		runtime.LockOSThread()
		tid <- uint32(unix.Gettid())
		<-tid
	}()
	other := <-tid
	defer func() { tid <- 0 }()
	if other == pid {
		t.Skip("the goroutine ran on the main thread")
	}
	require.Equal(t, pid, tgid(other))
	require.Equal(t, uint32(1<<22+12345), tgid(1<<22+12345), "no such thread")
}
