package conformance

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"syscall"
)

// getdents lists a directory with raw getdents64 calls, in the order the file system
// returns the entries, with "." and "..": os.ReadDir would sort them and hide ordering bugs.
func getdents(dir string) ([]string, error) {
	var fd int
	err := noEINTR(func() (err error) { fd, err = syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY, 0); return err })
	if err != nil {
		return nil, err
	}
	defer syscall.Close(fd)
	var names []string
	buf := make([]byte, 8192) // small, so that large directories take several calls
	for {
		var n int
		err := noEINTR(func() (err error) { n, err = syscall.ReadDirent(fd, buf); return err })
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return names, nil
		}
		for b := buf[:n]; len(b) > 0; {
			reclen := binary.LittleEndian.Uint16(b[16:18])
			name := b[19:reclen]
			names = append(names, string(name[:bytes.IndexByte(name, 0)]))
			b = b[reclen:]
		}
	}
}

// errnoOf extracts the errno of a failed syscall, 0 for success.
func errnoOf(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return syscall.Errno(0xffff)
}

// pread reads n bytes at off from path.
func pread(path string, off, n int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, n)
	got, err := f.ReadAt(buf, off)
	if got > 0 || err == nil {
		return buf[:got], nil
	}
	if err.Error() == "EOF" {
		return buf[:0], nil
	}
	return nil, err
}
