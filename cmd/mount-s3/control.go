package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mount-s3/mount-s3/impl/control"
	"github.com/mount-s3/mount-s3/impl/status"
	"github.com/mount-s3/mount-s3/impl/sync/local"
)

// Exit codes of `mount-s3 sync --flush`.
const (
	flushOK        = 0 // the bucket has every change
	flushFailed    = 1 // the command could not ask, or the sync dir failed
	flushUsage     = 2
	flushConflicts = 3 // written, and the bucket won conflicts: local versions are in lost+found
	flushStoreDown = 4 // the store did not take the write-back; the changes are safe and retried
)

// runSyncCommand is `mount-s3 sync --flush MNT`: write back every change of the sync-mode
// mount at MNT now and return when the bucket has them, with progress on a terminal and a
// summary at the end. `mount-s3 sync --recover SYNC_DIR` is runRecover.
func runSyncCommand(args []string) int {
	const usageLine = "Usage: mount-s3 sync --flush MNT\n       mount-s3 sync --recover SYNC_DIR\n"
	var target string
	flush, recoverDir := false, false
	for _, a := range args {
		switch {
		case a == "--flush":
			flush = true
		case a == "--recover":
			recoverDir = true
		case a == "--help" || a == "-h":
			fmt.Print(usageLine + "\n--flush: write back every change of the sync-mode mount at MNT now, and wait until the bucket has them.\n" +
				"  Shows progress on a terminal and ends with what was written and each conflict the bucket won.\n" +
				"  Exit status: 0 the bucket has every change; 3 it has them, and conflicts moved local versions to lost+found;\n" +
				"  4 the store did not take them (they are safe in the sync dir and retried); 1 any other failure.\n" +
				"--recover: set aside a sync dir whose metadata is damaged, keeping every data file, and list the files whose\n" +
				"changes had not reached the bucket; the next mount imports the bucket afresh.\n")
			return 0
		case target == "" && len(a) > 0 && a[0] != '-':
			target = a
		default:
			fmt.Fprintf(os.Stderr, "error: unexpected argument '%s'\n\n%s", a, usageLine)
			return flushUsage
		}
	}
	if flush == recoverDir || target == "" {
		fmt.Fprintf(os.Stderr, "error: expected '--flush' and a mount point, or '--recover' and a sync dir\n\n%s", usageLine)
		return flushUsage
	}
	if recoverDir {
		return runRecover(target)
	}
	c, err := dialMount(target)
	if err != nil {
		fmt.Fprintf(os.Stderr, "error: %v\n", err)
		return flushFailed
	}
	defer c.Close()
	interrupted := make(chan os.Signal, 1)
	var stopped atomic.Bool
	signal.Notify(interrupted, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-interrupted
		// Closing the connection tells the mount; the write-back goes on without us.
		stopped.Store(true)
		c.Close()
	}()
	tty := isTerminal(os.Stderr)
	shown := false
	var res *status.FlushResult
	err = c.Do(control.Request{Op: control.OpFlush}, func(l status.Line) error {
		switch {
		case l.Progress != nil && tty:
			fmt.Fprintf(os.Stderr, "\r\033[K%s", status.ProgressLine(*l.Progress))
			shown = true
		case l.Result != nil:
			res = l.Result
		}
		return nil
	})
	if shown {
		fmt.Fprint(os.Stderr, "\r\033[K")
	}
	switch {
	case stopped.Load():
		fmt.Fprintf(os.Stderr, "interrupted: the write-back goes on in the mount; 'mount-s3 status %s' shows what remains\n", target)
		return 130
	case errors.As(err, new(*control.RemoteError)):
		fmt.Fprintf(os.Stderr, "error: flush of %s: %v\n", target, err)
		return flushFailed
	case err != nil:
		fmt.Fprintf(os.Stderr, "error: flush of %s: %v (the changes are safe in the sync dir and are written back later)\n", target, err)
		return flushFailed
	case res == nil:
		fmt.Fprintf(os.Stderr, "error: flush of %s: the mount sent no result\n", target)
		return flushFailed
	}
	status.PrintResult(os.Stdout, *res)
	switch {
	case res.Failed != "" && res.StoreFailed:
		return flushStoreDown
	case res.Failed != "":
		return flushFailed
	case len(res.Conflicts) > 0 || res.ConflictsNotListed > 0:
		return flushConflicts
	}
	return flushOK
}

// runRecover is `mount-s3 sync --recover SYNC_DIR` (local.Salvage): it never deletes anything.
func runRecover(dir string) int {
	if _, err := os.Stat(filepath.Join(dir, local.DBFile)); err != nil {
		if _, derr := os.Stat(filepath.Join(dir, local.DataDir)); derr != nil {
			fmt.Fprintf(os.Stderr, "error: %s is not a sync dir (no %s, no %s/)\n", dir, local.DBFile, local.DataDir)
			return 2
		}
	}
	res, err := local.Salvage(dir, time.Now())
	if err != nil {
		fmt.Fprintf(os.Stderr, "error: %v\n", err)
		return 1
	}
	fmt.Printf("set %s aside as %s; nothing was deleted\n", dir, res.Aside)
	switch {
	case !res.DBReadable:
		fmt.Printf("the metadata could not be read: its %d data files are listed by id in %s\n", len(res.Pending), filepath.Join(res.Aside, local.SalvageFile))
	case len(res.Pending) == 0 && res.Queued == 0:
		fmt.Printf("every change had reached the bucket: the next mount imports it afresh\n")
	default:
		if len(res.Pending) > 0 {
			fmt.Printf("%d files had changes that had not reached the bucket; after mounting again, copy each back:\n", len(res.Pending))
		}
		for _, f := range res.Pending {
			if f.Path == "" {
				fmt.Printf("  %s    # %s: its record could not be read; look inside to see what it is\n", f.Data, f.Why)
				continue
			}
			fmt.Printf("  cp %s MNT/%s    # %s\n", f.Data, f.Path, f.Why)
		}
		if res.Queued > 0 {
			fmt.Printf("%d deletes or renames had not reached the bucket: redo them in the mount\n", res.Queued)
		}
	}
	return 0
}

// runStatusCommand is `mount-s3 status [--all] [--json] MNT`: the mount's mode, bucket and
// prefix and, in sync mode, a summary of what the bucket is still owed (counts, bytes, the
// oldest change's age), conflicts and the last error; --all lists every pending change,
// rename and lost+found file after it, --json streams the same as JSON lines. It never
// mounts anything and never writes to MNT.
func runStatusCommand(args []string) int {
	const usageLine = "Usage: mount-s3 status [--all] [--json] MNT\n"
	var mnt string
	asJSON, all := false, false
	for _, a := range args {
		switch {
		case a == "--json":
			asJSON = true
		case a == "--all" || a == "-a":
			all = true
		case a == "--help" || a == "-h":
			fmt.Print(usageLine + "\nShow what the mount-s3 mount at MNT is and, in sync mode, a summary of what it has not written back yet.\n\n" +
				"  --all   after the summary, list every pending change, rename in progress and file in lost+found\n" +
				"  --json  print JSON lines instead: {\"summary\":...} first, then one line per entry (every entry)\n")
			return 0
		case mnt == "" && len(a) > 0 && a[0] != '-':
			mnt = a
		default:
			fmt.Fprintf(os.Stderr, "error: unexpected argument '%s'\n\n%s", a, usageLine)
			return 2
		}
	}
	if mnt == "" {
		fmt.Fprintf(os.Stderr, "error: expected a mount point\n\n%s", usageLine)
		return 2
	}
	c, err := dialMount(mnt)
	if err != nil {
		fmt.Fprintf(os.Stderr, "error: %v\n", err)
		return 1
	}
	defer c.Close()
	out := bufio.NewWriterSize(os.Stdout, 64<<10)
	defer out.Flush()
	enc := json.NewEncoder(out)
	now := time.Now()
	listed := 0
	var summary status.Summary
	err = c.Do(control.Request{Op: control.OpStatus, All: all || asJSON}, func(l status.Line) error {
		if asJSON {
			return enc.Encode(l)
		}
		if l.Summary != nil {
			summary = *l.Summary
			status.PrintSummary(out, summary, now)
			return out.Flush()
		}
		if listed == 0 {
			fmt.Fprintln(out)
		}
		listed++
		status.PrintEntry(out, l, now)
		return nil
	})
	if err != nil {
		out.Flush()
		fmt.Fprintf(os.Stderr, "error: %v\n", err)
		return 1
	}
	if !asJSON && !all && summary.Mode == "sync" && summary.PendingUploads+summary.PendingDeletes+summary.Renames+summary.LostFound > 0 {
		fmt.Fprintf(out, "\n(every entry: mount-s3 status --all %s)\n", mnt)
	}
	return 0
}

// dialMount connects to the control socket of the mount-s3 mount whose root is mnt. Anything
// else (a plain directory, a directory inside a mount, another file system) is refused with
// what to do, and nothing is written to it.
func dialMount(mnt string) (*control.Client, error) {
	gone := fmt.Errorf("%s: the mount-s3 process of this mount is gone (transport endpoint is not connected); run 'umount %s' and mount again", mnt, mnt)
	st, err := os.Stat(mnt)
	switch {
	case errors.Is(err, syscall.ENOTCONN):
		return nil, gone
	case err != nil:
		return nil, fmt.Errorf("%s: %v", mnt, errors.Unwrap(err))
	case !st.IsDir():
		return nil, fmt.Errorf("%s is not a directory; give the mount point of a mount-s3 mount", mnt)
	}
	c, err := control.Dial(mnt)
	switch {
	case errors.Is(err, control.ErrStale):
		return nil, gone
	case errors.Is(err, control.ErrNotMount):
		return nil, fmt.Errorf("%s is not the mount point of a mount-s3 mount (list them with 'grep fuse.mount-s3 /proc/mounts')", mnt)
	case err != nil:
		return nil, fmt.Errorf("%s: %v", mnt, err)
	}
	return c, nil
}

// isTerminal reports whether f is a terminal (progress is drawn only there).
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
