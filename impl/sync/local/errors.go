package local

import (
	"errors"
	"syscall"
)

// Typed errors of the layer. Each wraps the errno the FUSE layer should return, so that
// errors.Is(err, syscall.ENOENT) works as well as errors.Is(err, ErrNotFound).
var (
	ErrNotFound  = &errnoError{"no such file or directory", syscall.ENOENT}
	ErrExists    = &errnoError{"file exists", syscall.EEXIST}
	ErrNotEmpty  = &errnoError{"directory not empty", syscall.ENOTEMPTY}
	ErrNotDir    = &errnoError{"not a directory", syscall.ENOTDIR}
	ErrIsDir     = &errnoError{"is a directory", syscall.EISDIR}
	ErrInvalid   = &errnoError{"invalid argument", syscall.EINVAL}
	ErrPermitted = &errnoError{"operation not permitted", syscall.EPERM}
	ErrBusy      = &errnoError{"file is open", syscall.EBUSY}
	// ErrNoAttr: the file has no extended attribute of that name (getxattr's ENODATA).
	ErrNoAttr = &errnoError{"no such extended attribute", syscall.ENODATA}
	// ErrNoSpace: the object's metadata would exceed what S3 stores (2 KiB in all), so an
	// extended attribute cannot be added: setxattr(2)'s "no space left to store it".
	ErrNoSpace = &errnoError{"extended attributes exceed the 2 KiB of metadata S3 keeps with an object", syscall.ENOSPC}
	// ErrNotSupported: a name outside the namespaces sync mode keeps (system.*).
	ErrNotSupported = &errnoError{"extended attribute namespace not supported", syscall.EOPNOTSUPP}
	// ErrDirty: the operation would drop data the bucket does not have (Expire of a dirty
	// file, SYNC.md invariant 6).
	ErrDirty = &errnoError{"file has changes not yet in the bucket", syscall.EBUSY}
	// ErrNoData: the file's bytes are not local (never fetched, or expired, Y2/Y10); the
	// engine must fetch them (PutData) before they can be read or changed here.
	ErrNoData = &errnoError{"file data is not local", syscall.ENODATA}
	// ErrCreateLost: a create answered before its record's commit (pending.go) whose commit
	// failed: the file's fsync and close report it, as a local file system reports a lost
	// write-back.
	ErrCreateLost = &errnoError{"the file's create could not be committed to the sync dir; what was written to it is lost", syscall.EIO}
	// ErrLocked: another process holds the sync dir.
	ErrLocked = errors.New("sync dir is in use by another process")
	// ErrCorrupt: the metadata database cannot be trusted; Open refuses to start.
	ErrCorrupt = errors.New("sync dir metadata is corrupt or unreadable")
	// ErrClosed: the layer was closed.
	ErrClosed = errors.New("sync dir layer is closed")
)

type errnoError struct {
	msg   string
	errno syscall.Errno
}

func (e *errnoError) Error() string { return e.msg }

// Is lets errors.Is match the errno as well as the sentinel.
func (e *errnoError) Is(target error) bool {
	if t, ok := target.(syscall.Errno); ok {
		return t == e.errno
	}
	return target == e
}

// Errno is the errno to return to the kernel.
func (e *errnoError) Errno() syscall.Errno { return e.errno }

// pathError names the path an operation failed on, keeping the sentinel for errors.Is.
type pathError struct {
	op, path string
	err      error
}

func (e *pathError) Error() string { return e.op + " " + quote(e.path) + ": " + e.err.Error() }
func (e *pathError) Unwrap() error { return e.err }

func quote(p string) string { return "/" + p }

func perr(op, path string, err error) error {
	if err == nil {
		return nil
	}
	return &pathError{op, path, err}
}
