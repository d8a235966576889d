//go:build !linux

package s3

import (
	"errors"
	"syscall"
)

func bindControl(ifaces []string) (func(network, address string, c syscall.RawConn) error, error) {
	return nil, errors.New("--bind needs Linux (SO_BINDTODEVICE)")
}
