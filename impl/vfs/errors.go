package vfs

import (
	"context"
	"errors"
	"fmt"
	"syscall"

	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/spec/keymap"
)

// Code classifies every error the file system returns. mount/ owns the one table from Code to
// errno; nothing else in the product picks an errno.
type Code int

const (
	CodeIO           Code = iota // the store failed or answered something unexpected
	CodeNotFound                 // no such file or directory
	CodeExists                   // the name already exists
	CodeNotDir                   // a path component is not a directory
	CodeIsDir                    // a file operation on a directory
	CodeNotEmpty                 // rmdir of a directory with entries
	CodePerm                     // the operation is not permitted by the mode's rules
	CodeAccess                   // the store refused our credentials
	CodeInvalid                  // bad argument, e.g. a non-sequential write in streaming mode
	CodeNotSupported             // the operation does not exist in this mode
	CodeReadOnly                 // the mount is read-only
	CodeNameTooLong              // a name longer than NAME_MAX
	CodeBadHandle                // an unknown handle (a bug in the caller or the kernel)
	CodeCrossDevice              // rename that cannot be done in this mode
	CodeNoSpace                  // the local disk is full
	CodeInterrupted              // the caller gave up (context cancelled)
	CodeNoAttr                   // no such extended attribute
	CodeBusy                     // the file or directory is in use
	CodeTooBig                   // a size beyond what the store or the file system allows
	// CodeNoXattrs: the file system keeps no extended attributes at all. The kernel is told
	// once (ENOSYS) and stops asking: otherwise every write(2) asks for security.capability
	// and every `ls -l` entry for security.selinux and an ACL, a round trip each.
	CodeNoXattrs
)

// Error is what every fs method returns on failure: which operation on which path failed,
// how to classify it, and why (the cause, or a sentence for the log).
type Error struct {
	Op   string
	Path string
	Code Code
	Err  error
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s %q: %v", e.Op, "/"+e.Path, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// CheckName checks name, a new or looked-up entry of a directory, for both cores: longer than
// 255 bytes is ENAMETOOLONG; a name no S3 key can hold (K3) is invalid, the Code the caller
// gives (NotFound for a lookup: such a name can exist nowhere; Invalid for a create). path is
// the entry's path, for the error.
func CheckName(op, path, name string, invalid Code) error {
	switch {
	case len(name) > keymap.MaxNameLen:
		return NewError(op, path, CodeNameTooLong, "name longer than 255 bytes")
	case !keymap.ValidName(name):
		return NewError(op, path, invalid, "not a valid name: no S3 key can hold it (K3)")
	}
	return nil
}

// NewError is an Error of code for op on path, for the reason given in words.
func NewError(op, path string, code Code, reason string) *Error {
	return &Error{Op: op, Path: path, Code: code, Err: errors.New(reason)}
}

// Classify is the one table from a cause to a Code, for both cores: the store's errors, the
// errnos the local disk's errors wrap (the sync layer's among them), and a caller that gave
// up. Anything else is CodeIO. A core that knows more about a cause may decide otherwise, and
// says why where it does (syncfs: a store's "not found" under a fetch is a stale local view).
func Classify(err error) Code {
	switch {
	case errors.Is(err, context.Canceled):
		return CodeInterrupted
	case errors.Is(err, s3.ErrNotFound):
		return CodeNotFound
	case errors.Is(err, s3.ErrAccessDenied):
		return CodeAccess
	case errors.Is(err, s3.ErrInvalidKey):
		return CodeInvalid
	}
	for _, c := range errnoCodes {
		if errors.Is(err, c.errno) {
			return c.code
		}
	}
	return CodeIO
}

// errnoCodes are the errnos a cause may wrap, in the order they are tried.
var errnoCodes = []struct {
	errno syscall.Errno
	code  Code
}{
	{syscall.ENOENT, CodeNotFound}, {syscall.EEXIST, CodeExists}, {syscall.ENOTEMPTY, CodeNotEmpty},
	{syscall.ENOTDIR, CodeNotDir}, {syscall.EISDIR, CodeIsDir}, {syscall.EINVAL, CodeInvalid},
	{syscall.EPERM, CodePerm}, {syscall.EBUSY, CodeBusy}, {syscall.ENOSPC, CodeNoSpace},
	{syscall.EDQUOT, CodeNoSpace}, {syscall.EFBIG, CodeTooBig}, {syscall.ENAMETOOLONG, CodeNameTooLong},
	{syscall.EOPNOTSUPP, CodeNotSupported},
}

// CodeOf returns the code of err: its own if it is an *Error, CodeIO otherwise.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	if errors.Is(err, context.Canceled) {
		return CodeInterrupted
	}
	return CodeIO
}
