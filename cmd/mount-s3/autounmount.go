package main

import (
	"io"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"github.com/mount-s3/mount-s3/mount"
)

// watchdogEnv names the mount point a watchdog process guards (--auto-unmount).
const watchdogEnv = "MOUNT_S3_AUTO_UNMOUNT_DIR"

// startWatchdog starts a small process that unmounts dir when this process dies in any way,
// even by SIGKILL, so the mount point never stays behind as "Transport endpoint is not
// connected". It learns of the death when the pipe it inherited reaches EOF. The write end
// stays open, unused, for the life of this process.
func startWatchdog(dir string) error {
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), watchdogEnv+"="+dir)
	cmd.ExtraFiles = []*os.File{r}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	r.Close()
	go func() { cmd.Wait() }()
	keepOpen = w
	return nil
}

// keepOpen holds the watchdog pipe's write end for the life of the process.
var keepOpen *os.File

// runWatchdog is the watchdog process: it waits for its parent to die, then unmounts dir
// lazily if it is still mounted.
func runWatchdog(dir string) int {
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	io.Copy(io.Discard, os.NewFile(3, "watchdog-pipe"))
	if mounted, _ := mount.IsMountPoint(dir); mounted {
		syscall.Unmount(dir, syscall.MNT_DETACH)
	}
	return 0
}
