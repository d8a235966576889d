//go:build !(linux || darwin || freebsd)

package cache

import "errors"

// freeSpace is unknown here: a MaxSize must be given.
func freeSpace(string) (int64, error) {
	return 0, errors.New("unknown on this system; give a maximum cache size")
}

// lockDir cannot lock here; sharing a directory between mounts is the user's mistake.
func lockDir(string) (func() error, error) { return func() error { return nil }, nil }
