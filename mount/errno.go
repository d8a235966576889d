package mount

import (
	"syscall"

	"github.com/mount-s3/mount-s3/impl/fs"
)

// errnos is the one table from the file system's error codes to what programs see.
var errnos = map[fs.Code]syscall.Errno{
	fs.CodeIO:           syscall.EIO,
	fs.CodeNotFound:     syscall.ENOENT,
	fs.CodeExists:       syscall.EEXIST,
	fs.CodeNotDir:       syscall.ENOTDIR,
	fs.CodeIsDir:        syscall.EISDIR,
	fs.CodeNotEmpty:     syscall.ENOTEMPTY,
	fs.CodePerm:         syscall.EPERM,
	fs.CodeAccess:       syscall.EACCES,
	fs.CodeInvalid:      syscall.EINVAL,
	fs.CodeNotSupported: syscall.ENOTSUP,
	fs.CodeReadOnly:     syscall.EROFS,
	fs.CodeNameTooLong:  syscall.ENAMETOOLONG,
	fs.CodeBadHandle:    syscall.EBADF,
	fs.CodeCrossDevice:  syscall.EXDEV,
	fs.CodeNoSpace:      syscall.ENOSPC,
	fs.CodeInterrupted:  syscall.EINTR,
	fs.CodeNoAttr:       syscall.ENODATA,
	fs.CodeBusy:         syscall.EBUSY,
	fs.CodeTooBig:       syscall.EFBIG,
}

// Errno returns the errno a program sees for err.
func Errno(err error) syscall.Errno {
	if e, ok := errnos[fs.CodeOf(err)]; ok {
		return e
	}
	return syscall.EIO
}
