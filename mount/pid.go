package mount

import (
	"bytes"
	"os"
	"strconv"

	"github.com/jacobsa/fuse/fuseops"
	"golang.org/x/sys/unix"

	"github.com/mount-s3/mount-s3/impl/vfs"
)

// caller names who sent a request: the process (tgid), the uid the kernel reports and the
// effective gid, which the kernel does not pass through jacobsa/fuse, read from /proc. When the
// thread is gone, the pid and uid stand and the gid is the uid's best guess: the mount's own.
func caller(oc fuseops.OpContext) vfs.Caller {
	c := vfs.Caller{Pid: oc.Pid, UID: oc.Uid, GID: uint32(os.Getgid())}
	status, err := os.ReadFile("/proc/" + strconv.FormatUint(uint64(oc.Pid), 10) + "/status")
	if err != nil {
		return c
	}
	for _, line := range bytes.Split(status, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("Tgid:")); ok {
			if n, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 10, 32); err == nil {
				c.Pid = uint32(n)
			}
		}
		if v, ok := bytes.CutPrefix(line, []byte("Gid:")); ok {
			// Real, effective, saved, filesystem: the file system's gid is what creates use.
			if f := bytes.Fields(v); len(f) == 4 {
				if n, err := strconv.ParseUint(string(f[3]), 10, 32); err == nil {
					c.GID = uint32(n)
				}
			}
		}
	}
	return c
}

// thread is the thread a request names, as a vfs.Process: its process is found when asked.
type thread uint32

// ID implements vfs.Process.
func (t thread) ID() uint32 { return tgid(uint32(t)) }

// tgid returns the process (thread group) id of the thread pid that the kernel names in a
// FUSE request, so that two threads of one program count as the same opener. It returns pid
// itself when /proc cannot tell (the thread has exited).
func tgid(pid uint32) uint32 {
	// Most requests come from a thread-group leader (a single-threaded program, or a main
	// thread), and pidfd_open accepts only a leader: one system call, where reading
	// /proc/PID/status took a sixth of the mount's CPU in `cat` of many small files (two
	// calls a file, at open and at close).
	if fd, err := unix.PidfdOpen(int(pid), 0); err == nil {
		unix.Close(fd)
		return pid
	}
	status, err := os.ReadFile("/proc/" + strconv.FormatUint(uint64(pid), 10) + "/status")
	if err != nil {
		return pid
	}
	for _, line := range bytes.Split(status, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("Tgid:")); ok {
			if n, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 10, 32); err == nil {
				return uint32(n)
			}
		}
	}
	return pid
}
