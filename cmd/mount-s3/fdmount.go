package main

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"
)

// fuseFD reports whether dir is /dev/fd/N, the form in which a caller that has already opened
// /dev/fuse and mounted it (Mountpoint's Kubernetes CSI driver) hands the connection over.
func fuseFD(dir string) (int, bool) {
	n, ok := strings.CutPrefix(dir, "/dev/fd/")
	if !ok {
		return 0, false
	}
	fd, err := strconv.Atoi(n)
	if err != nil || fd < 0 {
		return 0, false
	}
	return fd, true
}

// checkFuseFD refuses a /dev/fd/N that is not an open /dev/fuse connection, before anything
// starts: serving anything else would hang or write FUSE replies into a stranger's file.
func checkFuseFD(fd int) error {
	if fd < 3 {
		return fmt.Errorf("mount point /dev/fd/%d: descriptors 0-2 are standard input, output and error; pass the FUSE connection as descriptor 3 or higher", fd)
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return fmt.Errorf("mount point /dev/fd/%d: descriptor %d is not open (%v); the caller must open /dev/fuse, mount it with fd=%d and keep it open for this process", fd, fd, err, fd)
	}
	// /dev/fuse is character device 10,229.
	if st.Mode&syscall.S_IFMT != syscall.S_IFCHR || st.Rdev != 10<<8|229 {
		return fmt.Errorf("mount point /dev/fd/%d: descriptor %d is not /dev/fuse; the caller must open /dev/fuse, mount it with fd=%d and pass that descriptor", fd, fd, fd)
	}
	return nil
}
