package local

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/spec/syncrule"
)

// The crash tests run a scenario in a child process (this test binary, re-executed with
// crashEnv set), which SIGKILLs itself at a chosen point; the parent then reopens the sync dir
// and checks the invariants. SIGKILL gives the child no chance to flush or close anything,
// which is what a crash of the mount looks like to the sync dir.
const (
	crashEnv    = "MOUNT_S3_SYNCLOCAL_CRASH"
	crashDirEnv = "MOUNT_S3_SYNCLOCAL_CRASH_DIR"
)

func die() {
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {}
}

// crashSetup is the state every scenario starts from: a closed dirty file, a clean file, and a
// directory tree whose objects are in the bucket.
func crashSetup(t *testing.T, l *Layer) {
	writeFile(t, l, "closed", "closed data")
	writeFile(t, l, "clean", "clean data")
	upload(t, l, "clean")
	for _, d := range []string{"d", "d/sub"} {
		_, err := l.Mkdir(d, 0o755, 0, 0)
		require.NoError(t, err)
		upload(t, l, d)
	}
	for i := 0; i < 6; i++ {
		p := fmt.Sprintf("d/sub/f%d", i)
		writeFile(t, l, p, p)
		upload(t, l, p)
	}
}

func TestCrashHelper(t *testing.T) {
	scenario := os.Getenv(crashEnv)
	if scenario == "" {
		t.Skip("helper process of the crash tests")
	}
	l, err := Open(os.Getenv(crashDirEnv), testOpts())
	require.NoError(t, err)
	crashSetup(t, l)
	switch scenario {
	case "after-intent":
		crashHook = func(p string) {
			if p == "begin-write-after-intent" {
				die()
			}
		}
		l.BeginWrite("clean")
	case "after-data":
		h, err := l.BeginWrite("clean")
		require.NoError(t, err)
		h.WriteAt([]byte("NEW, LONGER CONTENT"), 0)
		die()
	case "fsync-before-commit":
		h, err := l.BeginWrite("clean")
		require.NoError(t, err)
		h.WriteAt([]byte("NEW, LONGER CONTENT"), 0)
		crashHook = func(p string) {
			if p == "sync-after-fsync" {
				die()
			}
		}
		h.Close()
	case "after-close":
		h, err := l.BeginWrite("clean")
		require.NoError(t, err)
		h.WriteAt([]byte("NEW, LONGER CONTENT"), 0)
		require.NoError(t, h.Close())
		die()
	case "snapshot-then-write":
		h, err := l.BeginWrite("clean")
		require.NoError(t, err)
		_, _, _, err = l.Snapshot("clean")
		require.NoError(t, err)
		h.WriteAt([]byte("after snapshot"), 0)
		require.NoError(t, h.Close())
		die()
	case "mid-rename":
		crashHook = func(p string) {
			if p == "rename-mid" {
				die()
			}
		}
		l.Rename("d", "e")
	case "after-rename":
		require.NoError(t, l.Rename("d", "e"))
		die()
	case "create-entry-lost":
		// Create does not make the data file's entry durable (a close with bytes does): a
		// power loss right after its commit can keep the record and lose the file.
		crashHook = func(p string) {
			if p == "create-after-intent" {
				info, err := l.Stat("new")
				require.NoError(t, err)
				require.NoError(t, os.Remove(l.dataPath(info.ID)))
				die()
			}
		}
		l.Create("new", 0o644, 0, 0)
	case "create-pending":
		// A create answered before its commit, written to but neither closed nor synced.
		holdCommits(t, l, nil)
		_, h, err := l.CreateOpen("fresh", 0o644, 0, 0)
		require.NoError(t, err)
		_, err = h.WriteAt([]byte("never closed"), 0)
		require.NoError(t, err)
		die()
	case "mid-conflict", "after-conflict":
		// "closed" is dirty; its upload fails on a precondition: the bucket has another version.
		res, err := l.Apply("closed", syncrule.Flush{}, syncrule.DefaultParams())
		require.NoError(t, err)
		if scenario == "mid-conflict" {
			crashHook = func(p string) {
				if p == "conflict-mid" {
					die()
				}
			}
		}
		_, err = l.Apply("closed", syncrule.UploadFailed{Gen: res.Ops[0].Gen, Conflict: true, Remote: v2, RemoteSize: 6},
			syncrule.DefaultParams())
		require.NoError(t, err)
		die()
	case "remote-before-drop":
		crashHook = func(p string) {
			if p == "conflict-before-drop" {
				die()
			}
		}
		l.ApplyRemote("clean", KindFile, syncrule.RemoteChanged{Version: v2, Size: 6}, syncrule.DefaultParams())
	case "after-apply":
		_, err := l.Apply("closed", syncrule.Flush{}, syncrule.DefaultParams())
		require.NoError(t, err)
		die()
	}
	t.Fatalf("scenario %q did not crash", scenario)
}

// crash runs scenario in a child and returns the reopened sync dir.
func crash(t *testing.T, scenario string) *Layer {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+scenario, crashDirEnv+"="+dir)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	require.True(t, errors.As(err, &ee), "child did not die: %v\n%s", err, out)
	ws := ee.Sys().(syscall.WaitStatus)
	require.True(t, ws.Signaled() && ws.Signal() == syscall.SIGKILL, "child: %v\n%s", err, out)
	l, err := Open(dir, testOpts())
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	return l
}

// checkCommon: what was closed before the crash is intact and dirty (invariants 2, 7).
func checkCommon(t *testing.T, l *Layer) {
	t.Helper()
	require.Equal(t, "closed data", readFile(t, l, "closed"))
	require.Contains(t, dirtyPaths(t, l), "closed")
}

func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	const newData = "NEW, LONGER CONTENT"
	t.Run("after-intent", func(t *testing.T) {
		l := crash(t, "after-intent")
		checkCommon(t, l)
		require.Contains(t, dirtyPaths(t, l), "clean", "invariant 1: the intent was committed")
		require.Equal(t, "clean data", readFile(t, l, "clean"))
	})
	t.Run("after-data", func(t *testing.T) {
		l := crash(t, "after-data")
		checkCommon(t, l)
		require.Contains(t, dirtyPaths(t, l), "clean", "invariant 1: a changed file is dirty")
		got := readFile(t, l, "clean")
		require.Contains(t, []string{"clean data", newData}, got, "unsynced: old or new, never torn on a page-cache crash")
	})
	t.Run("fsync-before-commit", func(t *testing.T) {
		l := crash(t, "fsync-before-commit")
		checkCommon(t, l)
		require.Contains(t, dirtyPaths(t, l), "clean")
		require.Equal(t, newData, readFile(t, l, "clean"), "the data file's size wins for a dirty file")
	})
	t.Run("after-close", func(t *testing.T) {
		l := crash(t, "after-close")
		checkCommon(t, l)
		require.Contains(t, dirtyPaths(t, l), "clean")
		require.Equal(t, newData, readFile(t, l, "clean"), "invariant 2: closed means durable")
		info, _ := l.Stat("clean")
		require.EqualValues(t, len(newData), info.Size)
	})
	t.Run("snapshot-then-write", func(t *testing.T) {
		l := crash(t, "snapshot-then-write")
		checkCommon(t, l)
		info, _ := l.Stat("clean")
		require.True(t, info.State.Dirty())
		require.Equal(t, "after snapshot", readFile(t, l, "clean"))
		// The upload of the old snapshot finishes after the restart: still dirty (invariant 4).
		clean, err := l.MarkUploaded("clean", info.State.Gen-1, syncrule.Version{ETag: "late"})
		require.NoError(t, err)
		require.False(t, clean)
	})
	t.Run("mid-rename", func(t *testing.T) {
		l := crash(t, "mid-rename")
		checkCommon(t, l)
		_, err := l.Stat("e")
		require.ErrorIs(t, err, ErrNotFound, "the rename is one transaction: nothing moved")
		ls, err := l.List("d/sub")
		require.NoError(t, err)
		require.Len(t, ls, 6)
		for _, i := range ls {
			require.Equal(t, i.Path, readFile(t, l, i.Path))
		}
		ops, _ := l.Pending()
		require.Empty(t, ops, "and nothing queued")
		require.Equal(t, []string{"closed"}, dirtyPaths(t, l))
	})
	t.Run("after-rename", func(t *testing.T) {
		l := crash(t, "after-rename")
		checkCommon(t, l)
		_, err := l.Stat("d")
		require.ErrorIs(t, err, ErrNotFound)
		ls, _ := l.List("e/sub")
		require.Len(t, ls, 6)
		for i, e := range ls {
			require.Equal(t, fmt.Sprintf("d/sub/f%d", i), readFile(t, l, e.Path))
		}
		ops, _ := l.Pending()
		require.Len(t, ops, 8, "invariant 5: one copy+delete per object, resumable")
		require.Len(t, dirtyPaths(t, l), 9)
	})
	t.Run("create-entry-lost", func(t *testing.T) {
		l := crash(t, "create-entry-lost")
		checkCommon(t, l)
		require.Contains(t, dirtyPaths(t, l), "new")
		require.Equal(t, "", readFile(t, l, "new"), "recovery recreates the empty data file")
		_, err := l.WriteAt("new", []byte("ok"), 0)
		require.NoError(t, err)
	})
	t.Run("create-pending", func(t *testing.T) {
		l := crash(t, "create-pending")
		checkCommon(t, l)
		_, err := l.Stat("fresh")
		require.ErrorIs(t, err, ErrNotFound, "a create is durable once closed or synced, not before")
		require.Equal(t, []string{"closed"}, dirtyPaths(t, l))
		require.Equal(t, dataFiles(t, l), recordIDs(t, l), "recovery removed the data file no record names")
	})
	t.Run("mid-conflict", func(t *testing.T) {
		l := crash(t, "mid-conflict")
		// One transaction: nothing moved, the dirty version and its op are as before.
		checkCommon(t, l)
		ops, _ := l.Pending()
		require.Len(t, ops, 1)
		_, err := l.Stat(syncrule.LostFoundDir(l.FSID()))
		require.ErrorIs(t, err, ErrNotFound)
		// The replayed op meets the conflict again and resolves it.
		res, err := l.Apply("closed", syncrule.UploadFailed{Gen: ops[0].Gen, Conflict: true, Remote: v2, RemoteSize: 6},
			syncrule.DefaultParams())
		require.NoError(t, err)
		require.Equal(t, lostFoundPath(l, 1, "closed"), res.LostFound)
		require.Equal(t, "closed data", readFile(t, l, res.LostFound))
	})
	t.Run("after-conflict", func(t *testing.T) {
		l := crash(t, "after-conflict")
		lf := lostFoundPath(l, 1, "closed")
		require.Equal(t, "closed data", readFile(t, l, lf), "the local version is in lost+found, durably")
		info, err := l.Stat(lf)
		require.NoError(t, err)
		require.Equal(t, "closed", info.OriginalPath)
		info, err = l.Stat("closed")
		require.NoError(t, err)
		require.True(t, info.State.Base.Same(v2))
		ops, _ := l.Pending()
		require.Empty(t, ops, "the op was settled with the outcome")
		require.Empty(t, dirtyPaths(t, l))
		// Ids keep increasing after a restart.
		writeFile(t, l, "closed2", "x")
		op := startUpload(t, l, "closed2")
		res, err := l.Apply("closed2", syncrule.UploadFailed{Gen: op.Gen, Conflict: true, Remote: v2}, syncrule.DefaultParams())
		require.NoError(t, err)
		require.Equal(t, lostFoundPath(l, 2, "closed2"), res.LostFound)
	})
	t.Run("remote-before-drop", func(t *testing.T) {
		l := crash(t, "remote-before-drop")
		checkCommon(t, l)
		info, err := l.Stat("clean")
		require.NoError(t, err)
		require.True(t, info.State.Base.Same(v2))
		require.Equal(t, syncrule.NoData, info.State.Data, "the stale data file is an orphan, removed at Open")
	})
	t.Run("after-apply", func(t *testing.T) {
		l := crash(t, "after-apply")
		checkCommon(t, l)
		ops, _ := l.Pending()
		require.Len(t, ops, 1)
		require.Equal(t, OpUpload, ops[0].Kind)
		info, _ := l.Stat("closed")
		require.Equal(t, syncrule.OpUpload, info.State.InFlight, "the state and its op were one commit")
	})
}
