package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
)

// childEnv marks the background process that daemonize starts; the value is the number of
// the pipe descriptor on which it reports readiness.
const childEnv = "MOUNT_S3_DAEMON_READY_FD"

// daemonize starts this program again in its own session and waits until it reports that the
// mount is ready (exit 0) or why it failed (exit 1). Go cannot fork, so re-executing is the
// way to detach.
func daemonize(args []string, dir string) int {
	r, w, err := os.Pipe()
	if err != nil {
		fmt.Fprintf(os.Stderr, "error: %v\n", err)
		return 1
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(os.Stderr, "error: %v\n", err)
		return 1
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		fmt.Fprintf(os.Stderr, "error: %v\n", err)
		return 1
	}
	cmd := exec.Command(self, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, devnull, devnull
	// The child gets the ready pipe at descriptor 3, or, when the mount point is /dev/fd/N, the
	// FUSE connection at N (where its arguments say it is) and the pipe just after it.
	cmd.ExtraFiles = []*os.File{w}
	readyFD := 3
	if fd, ok := fuseFD(dir); ok && fd >= 3 {
		cmd.ExtraFiles = make([]*os.File, fd-3+2)
		cmd.ExtraFiles[fd-3] = os.NewFile(uintptr(fd), "/dev/fuse")
		cmd.ExtraFiles[fd-3+1] = w
		readyFD = fd + 1
	}
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d", childEnv, readyFD))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "error: starting the mount process: %v\n", err)
		return 1
	}
	w.Close()
	line, _ := bufio.NewReader(r).ReadString('\n')
	line = strings.TrimSpace(line)
	if line == "ready" {
		cmd.Process.Release()
		return 0
	}
	if line == "" {
		state, _ := cmd.Process.Wait()
		line = fmt.Sprintf("the mount process exited before the mount was ready (%v)", state)
	}
	fmt.Fprintf(os.Stderr, "error: %s\n", line)
	return 1
}

// readyReporter returns the function the background process calls once: nil when the mount
// is ready, or the error that stopped it. In the foreground it does nothing.
func readyReporter() func(error) {
	if os.Getenv(childEnv) == "" {
		return func(error) {}
	}
	fd, err := strconv.Atoi(os.Getenv(childEnv))
	if err != nil || fd < 3 {
		return func(error) {}
	}
	f := os.NewFile(uintptr(fd), "ready-pipe")
	done := false
	return func(err error) {
		if done || f == nil {
			return
		}
		done = true
		if err == nil {
			fmt.Fprintln(f, "ready")
		} else {
			fmt.Fprintln(f, strings.ReplaceAll(err.Error(), "\n", " "))
		}
		f.Close()
	}
}
