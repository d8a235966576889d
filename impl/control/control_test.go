package control

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/impl/status"
)

func listen(t *testing.T) *Server {
	t.Helper()
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	s, err := Listen(slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

// The socket is the mounting user's alone: mode 0600 in a 0700 directory of theirs.
func TestSocketIsPrivate(t *testing.T) {
	s := listen(t)
	st, err := os.Stat(s.Path())
	require.NoError(t, err)
	require.Equal(t, os.ModeSocket|0o600, st.Mode()&(os.ModeType|os.ModePerm))
	if os.Getuid() != 0 {
		dir, err := os.Stat(filepath.Dir(s.Path()))
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o700), dir.Mode().Perm())
	}
	require.NoError(t, s.Close())
	_, err = os.Stat(s.Path())
	require.ErrorIs(t, err, os.ErrNotExist, "the socket is removed at close")
}

// An answer has no size limit: a long stream of entries arrives whole and in order
// (issue 15: the extended attribute carried at most 64 KiB, about 700 pending changes).
func TestLongAnswerStreams(t *testing.T) {
	n := 1_000_000
	if testing.Short() || raceOn {
		n = 100_000
	}
	s := listen(t)
	s.Serve(func(ctx context.Context, req Request, send func(status.Line) error) error {
		require.Equal(t, Request{Op: OpStatus, All: true}, req)
		if err := send(status.Line{Summary: &status.Summary{Mode: "sync", PendingUploads: n}}); err != nil {
			return err
		}
		for i := 0; i < n; i++ {
			if err := send(status.Line{Pending: &status.Pending{Path: fmt.Sprintf("dir/file-%07d", i)}}); err != nil {
				return err
			}
		}
		return nil
	})
	c, err := dialSocket(s.Path())
	require.NoError(t, err)
	defer c.Close()
	got := 0
	require.NoError(t, c.Do(Request{Op: OpStatus, All: true}, func(l status.Line) error {
		if l.Summary != nil {
			require.Zero(t, got, "the summary comes first")
			require.Equal(t, n, l.Summary.PendingUploads)
			return nil
		}
		if want := fmt.Sprintf("dir/file-%07d", got); l.Pending == nil || l.Pending.Path != want {
			return fmt.Errorf("entry %d: %+v, want %s", got, l, want)
		}
		got++
		return nil
	}))
	require.Equal(t, n, got)
}

// A handler's failure reaches the command as its error; a command that goes away cancels
// the handler's context.
func TestErrorsAndCancellation(t *testing.T) {
	s := listen(t)
	cancelled := make(chan struct{})
	s.Serve(func(ctx context.Context, req Request, send func(status.Line) error) error {
		if req.Op == "fail" {
			return errors.New("the sync dir failed")
		}
		send(status.Line{Progress: &status.Progress{Done: 1}})
		<-ctx.Done()
		close(cancelled)
		return ctx.Err()
	})
	c, err := dialSocket(s.Path())
	require.NoError(t, err)
	err = c.Do(Request{Op: "fail"}, func(status.Line) error { return nil })
	require.EqualError(t, err, "the sync dir failed")
	c.Close()

	c, err = dialSocket(s.Path())
	require.NoError(t, err)
	stop := errors.New("interrupted")
	require.ErrorIs(t, c.Do(Request{Op: OpFlush}, func(l status.Line) error { return stop }), stop)
	c.Close()
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("the handler's context was not cancelled when the command went away")
	}
}

// Close ends answers in progress: the command hears the mount went away, not silence.
func TestCloseEndsAnswers(t *testing.T) {
	s := listen(t)
	started := make(chan struct{})
	s.Serve(func(ctx context.Context, req Request, send func(status.Line) error) error {
		close(started)
		<-ctx.Done()
		return ctx.Err()
	})
	c, err := dialSocket(s.Path())
	require.NoError(t, err)
	defer c.Close()
	done := make(chan error, 1)
	go func() { done <- c.Do(Request{Op: OpFlush}, func(status.Line) error { return nil }) }()
	<-started
	require.NoError(t, s.Close())
	err = <-done
	require.Error(t, err)
	require.True(t, strings.Contains(err.Error(), "closed the control connection"), err.Error())
}

// Dial of a directory that is not a mount's root says so and writes nothing to it.
func TestDialPlainDirectory(t *testing.T) {
	dir := t.TempDir()
	_, err := Dial(dir)
	require.ErrorIs(t, err, ErrNotMount)
	entries, _ := os.ReadDir(dir)
	require.Empty(t, entries)
}

// A SIGKILLed mount leaves its socket behind; the next mount removes it, and only it: not a
// socket that still answers, not one just made (its mount may not listen yet), not one
// named for a live process, not a file that is no socket.
func TestSweepRemovesSocketsOfMountsThatAreGone(t *testing.T) {
	dir := t.TempDir()
	old := time.Now().Add(-2 * staleAge)
	sock := func(name string, live bool, mtime time.Time) string {
		p := filepath.Join(dir, name)
		ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: p, Net: "unix"})
		require.NoError(t, err)
		if live {
			t.Cleanup(func() { ln.Close() })
		} else {
			ln.SetUnlinkOnClose(false)
			ln.Close()
		}
		require.NoError(t, os.Chtimes(p, mtime, mtime))
		return p
	}
	const nobody = 1<<22 + 7 // above the kernel's largest pid
	gone := sock(fmt.Sprintf("%d-aa.sock", nobody), false, old)
	fresh := sock(fmt.Sprintf("%d-bb.sock", nobody), false, time.Now())
	answers := sock(fmt.Sprintf("%d-cc.sock", nobody), true, old)
	ours := sock(fmt.Sprintf("%d-dd.sock", os.Getpid()), false, old)
	plain := filepath.Join(dir, fmt.Sprintf("%d-ee.sock", nobody))
	require.NoError(t, os.WriteFile(plain, nil, 0o600))
	require.NoError(t, os.Chtimes(plain, old, old))

	require.Equal(t, 1, sweep(dir, "", time.Now()))
	require.NoFileExists(t, gone)
	for _, p := range []string{fresh, answers, ours, plain} {
		_, err := os.Lstat(p)
		require.NoError(t, err, "%s was removed", filepath.Base(p))
	}
}
