package mount

import (
	"syscall"

	"github.com/mount-s3/mount-s3/impl/vfs"
)

// errnos is the one table from the file system's error codes to what programs see.
var errnos = map[vfs.Code]syscall.Errno{
	vfs.CodeIO:           syscall.EIO,
	vfs.CodeNotFound:     syscall.ENOENT,
	vfs.CodeExists:       syscall.EEXIST,
	vfs.CodeNotDir:       syscall.ENOTDIR,
	vfs.CodeIsDir:        syscall.EISDIR,
	vfs.CodeNotEmpty:     syscall.ENOTEMPTY,
	vfs.CodePerm:         syscall.EPERM,
	vfs.CodeAccess:       syscall.EACCES,
	vfs.CodeInvalid:      syscall.EINVAL,
	vfs.CodeNotSupported: syscall.ENOTSUP,
	vfs.CodeReadOnly:     syscall.EROFS,
	vfs.CodeNameTooLong:  syscall.ENAMETOOLONG,
	vfs.CodeBadHandle:    syscall.EBADF,
	vfs.CodeCrossDevice:  syscall.EXDEV,
	vfs.CodeNoSpace:      syscall.ENOSPC,
	vfs.CodeInterrupted:  syscall.EINTR,
	vfs.CodeNoAttr:       syscall.ENODATA,
	vfs.CodeBusy:         syscall.EBUSY,
	vfs.CodeTooBig:       syscall.EFBIG,
	vfs.CodeNoXattrs:     syscall.ENOSYS, // the kernel answers ENOTSUP from then on, unasked
}

// Errno returns the errno a program sees for err.
func Errno(err error) syscall.Errno {
	if e, ok := errnos[vfs.CodeOf(err)]; ok {
		return e
	}
	return syscall.EIO
}
