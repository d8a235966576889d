package main

import (
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/mount-s3/mount-s3/impl/status"

	"github.com/mount-s3/mount-s3/impl/syncfs"
)

// runSyncCommand is `mount-s3 sync --flush MNT`: write back every change of the sync-mode
// mount at MNT now and return when the bucket has them. It talks to the mount through a
// control attribute on the mount's root (syncfs.FlushXattr), so it needs no socket, works
// for any user who can reach the mount, and waits exactly as long as the write-back takes.
func runSyncCommand(args []string) int {
	var mnt string
	flush := false
	for _, a := range args {
		switch {
		case a == "--flush":
			flush = true
		case a == "--help" || a == "-h":
			fmt.Print("Usage: mount-s3 sync --flush MNT\n\nWrite back every change of the sync-mode mount at MNT now, and wait until the bucket has them.\n")
			return 0
		case mnt == "" && len(a) > 0 && a[0] != '-':
			mnt = a
		default:
			fmt.Fprintf(os.Stderr, "error: unexpected argument '%s'\n\nUsage: mount-s3 sync --flush MNT\n", a)
			return 2
		}
	}
	if !flush || mnt == "" {
		fmt.Fprintf(os.Stderr, "error: expected '--flush' and a mount point\n\nUsage: mount-s3 sync --flush MNT\n")
		return 2
	}
	if err := syscall.Setxattr(mnt, syncfs.FlushXattr, []byte("1"), 0); err != nil {
		if err == syscall.ENOTSUP {
			fmt.Fprintf(os.Stderr, "error: %s is not a sync-mode mount-s3 mount (mounted without --sync-dir?)\n", mnt)
			return 1
		}
		fmt.Fprintf(os.Stderr, "error: flush of %s: %v (the changes are safe locally and will be retried; see the mount's log)\n", mnt, err)
		return 1
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
	b, err := getxattr(mnt, status.StatusXattr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "error: %s is not a mount-s3 mount, or it does not answer: %v\n", mnt, err)
		return 1
	}
	if asJSON {
		os.Stdout.Write(append(b, '\n'))
		return 0
	}
	r, err := status.Decode(b)
	if err != nil {
		fmt.Fprintf(os.Stderr, "error: unreadable status from %s: %v\n", mnt, err)
		return 1
	}
	status.Print(os.Stdout, r, time.Now())
	return 0
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
