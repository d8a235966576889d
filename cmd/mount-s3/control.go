package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/mount-s3/mount-s3/impl/status"
	"github.com/mount-s3/mount-s3/impl/sync/local"
	"github.com/mount-s3/mount-s3/impl/syncfs"
)

// runSyncCommand is `mount-s3 sync --flush MNT`: write back every change of the sync-mode
// mount at MNT now and return when the bucket has them. `mount-s3 sync --recover SYNC_DIR` is
// runRecover. It talks to the mount through a
// control attribute on the mount's root (syncfs.FlushXattr), so it needs no socket, works
// for any user who can reach the mount, and waits exactly as long as the write-back takes.
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
				"--recover: set aside a sync dir whose metadata is damaged, keeping every data file, and list the files whose\n" +
				"changes had not reached the bucket; the next mount imports the bucket afresh.\n")
			return 0
		case target == "" && len(a) > 0 && a[0] != '-':
			target = a
		default:
			fmt.Fprintf(os.Stderr, "error: unexpected argument '%s'\n\n%s", a, usageLine)
			return 2
		}
	}
	if flush == recoverDir || target == "" {
		fmt.Fprintf(os.Stderr, "error: expected '--flush' and a mount point, or '--recover' and a sync dir\n\n%s", usageLine)
		return 2
	}
	if recoverDir {
		return runRecover(target)
	}
	mnt := target
	r, err := mountStatus(mnt)
	if err != nil {
		fmt.Fprintf(os.Stderr, "error: %v\n", err)
		return 1
	}
	if r.Mode != "sync" {
		fmt.Fprintf(os.Stderr, "error: %s is a streaming mount: every file is in the bucket when its close returns; flush applies to sync-mode mounts (--sync-dir)\n", mnt)
		return 1
	}
	if err := syscall.Setxattr(mnt, syncfs.FlushXattr, []byte("1"), 0); err != nil {
		fmt.Fprintf(os.Stderr, "error: flush of %s: %v (the changes are safe locally and will be retried; see the mount's log)\n", mnt, err)
		return 1
	}
	return 0
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

// runStatusCommand is `mount-s3 status [--json] MNT`: the mount's mode, bucket and prefix and,
// in sync mode, pending write-backs with their age, renames in progress and the files in
// lost+found with their original paths. It reads the control attribute status.StatusXattr.
func runStatusCommand(args []string) int {
	var mnt string
	asJSON := false
	for _, a := range args {
		switch {
		case a == "--json":
			asJSON = true
		case a == "--help" || a == "-h":
			fmt.Print("Usage: mount-s3 status [--json] MNT\n\nShow what the mount-s3 mount at MNT is and, in sync mode, what it has not written back yet.\n")
			return 0
		case mnt == "" && len(a) > 0 && a[0] != '-':
			mnt = a
		default:
			fmt.Fprintf(os.Stderr, "error: unexpected argument '%s'\n\nUsage: mount-s3 status [--json] MNT\n", a)
			return 2
		}
	}
	if mnt == "" {
		fmt.Fprintf(os.Stderr, "error: expected a mount point\n\nUsage: mount-s3 status [--json] MNT\n")
		return 2
	}
	r, err := mountStatus(mnt)
	if err != nil {
		fmt.Fprintf(os.Stderr, "error: %v\n", err)
		return 1
	}
	if asJSON {
		b, _ := status.Encode(r)
		os.Stdout.Write(append(b, '\n'))
		return 0
	}
	status.Print(os.Stdout, r, time.Now())
	return 0
}

// mountStatus reads the status report of the mount-s3 mount whose root is mnt. Anything else
// (a plain directory, a directory inside a mount, another file system) is refused with what to
// do, and nothing is written to it.
func mountStatus(mnt string) (status.Report, error) {
	st, err := os.Stat(mnt)
	switch {
	case err != nil:
		return status.Report{}, fmt.Errorf("%s: %v", mnt, errors.Unwrap(err))
	case !st.IsDir():
		return status.Report{}, fmt.Errorf("%s is not a directory; give the mount point of a mount-s3 mount", mnt)
	}
	b, err := getxattr(mnt, status.StatusXattr)
	if errors.Is(err, syscall.ENOTCONN) {
		return status.Report{}, fmt.Errorf("%s: the mount-s3 process of this mount is gone (transport endpoint is not connected); run 'umount %s' and mount again", mnt, mnt)
	}
	if err != nil {
		return status.Report{}, fmt.Errorf("%s is not the mount point of a mount-s3 mount (list them with 'grep fuse.mount-s3 /proc/mounts')", mnt)
	}
	r, err := status.Decode(b)
	if err != nil {
		return status.Report{}, fmt.Errorf("unreadable status from %s: %v", mnt, err)
	}
	return r, nil
}

// getxattr reads a whole extended attribute, growing the buffer if it changed size between
// the two calls.
func getxattr(path, name string) ([]byte, error) {
	for {
		n, err := syscall.Getxattr(path, name, nil)
		if err != nil {
			return nil, err
		}
		buf := make([]byte, n+4096)
		n, err = syscall.Getxattr(path, name, buf)
		if err == syscall.ERANGE {
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}
