//go:build linux || darwin || freebsd

package cache

import (
	"errors"
	"os"
	"syscall"
)

// freeSpace returns the bytes available to unprivileged users on dir's file system.
func freeSpace(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// lockDir takes an exclusive flock on path (created if missing) and returns its release.
// The kernel drops the lock when the process dies, so a crash never leaves Dir locked.
func lockDir(path string) (func() error, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errors.New("in use by another mount")
		}
		return nil, err
	}
	return f.Close, nil
}
