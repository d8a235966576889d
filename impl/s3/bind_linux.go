package s3

import (
	"fmt"
	"net"
	"sync/atomic"
	"syscall"
)

// bindControl returns a dialer hook that binds each new connection to one of ifaces in turn
// (SO_BINDTODEVICE), as Mountpoint's --bind does. Binding needs Linux 5.7 or later for an
// unprivileged process, or CAP_NET_RAW.
func bindControl(ifaces []string) (func(network, address string, c syscall.RawConn) error, error) {
	for _, name := range ifaces {
		if _, err := net.InterfaceByName(name); err != nil {
			return nil, fmt.Errorf("--bind %s: no such network interface (see `ip link`)", name)
		}
	}
	var next atomic.Uint64
	return func(network, address string, c syscall.RawConn) error {
		name := ifaces[(next.Add(1)-1)%uint64(len(ifaces))]
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptString(int(fd), syscall.SOL_SOCKET, syscall.SO_BINDTODEVICE, name)
		}); err != nil {
			return err
		}
		if serr != nil {
			return fmt.Errorf("binding a connection to network interface %s: %w", name, serr)
		}
		return nil
	}, nil
}
