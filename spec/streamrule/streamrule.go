// Package streamrule decides streaming mode's write and namespace rules (S2, S4-S8 and S10 of
// docs/SEMANTICS.md): which creates, write opens, unlinks, rmdirs and setattrs are allowed,
// what streaming mode does not support, whether an open makes a read or a write handle, and
// how a write handle's upload moves from its first byte to its commit. The streaming core
// (impl/streamfs) and the reference model (spec/model) both ask it, so the two cannot decide
// differently. It is pure: no I/O, no clock, no goroutines.
//
// What a path names (Target) is the caller's to find out, from what it holds locally or from
// the bucket (spec/keymap decides names and shadowing); the rules here only judge it.
package streamrule

import "syscall"

// Verdict is a rule's answer to an operation: allowed (Errno 0), or the errno a program gets,
// the rule that decides it and why, in words a user can act on.
type Verdict struct {
	Errno  syscall.Errno
	Rule   string
	Reason string
}

// Allowed reports whether the operation may go ahead.
func (v Verdict) Allowed() bool { return v.Errno == 0 }

func refuse(errno syscall.Errno, rule, reason string) Verdict {
	return Verdict{Errno: errno, Rule: rule, Reason: reason}
}

// Options are the mount options the rules depend on.
type Options struct {
	AllowOverwrite bool // --allow-overwrite (S6)
	AllowDelete    bool // --allow-delete (S6)
}

// Target is what an operation's path names, as far as the rules care.
type Target struct {
	Exists bool
	// Dir: a directory, in the bucket or made by mkdir, which shadows a file of its name (K4).
	Dir bool
	// BeingWritten: a file open for writing, whose upload is not complete (S2, S4).
	BeingWritten bool
}

// Create is open(O_CREAT|O_EXCL) and mkdir of path: a name that exists, as a file or a
// directory, in the bucket or locally, is EEXIST (S6, S7).
func Create(t Target) Verdict {
	if t.Exists {
		return refuse(syscall.EEXIST, "S6", "file exists")
	}
	return Verdict{}
}

// OpenWrite is an open for writing of an existing path (S6): a directory is EISDIR; a file
// being written cannot be opened for writing again (S2); replacing an object needs
// --allow-overwrite and O_TRUNC, since S3 cannot append to or edit an object.
func OpenWrite(t Target, trunc bool, o Options) Verdict {
	if v := idleFile(t, "the file is already open for writing (one writer at a time in streaming mode)"); !v.Allowed() {
		return v
	}
	switch {
	case !o.AllowOverwrite:
		return refuse(syscall.EPERM, "S6", "overwriting an existing object needs --allow-overwrite (and O_TRUNC)")
	case !trunc:
		return refuse(syscall.EPERM, "S6", "an existing object can only be replaced whole (O_TRUNC); appending or editing in place needs --sync-dir")
	}
	return Verdict{}
}

// Unlink deletes a file's object at once (S6): never a directory, never a file being
// written (S2), and only with --allow-delete.
func Unlink(t Target, o Options) Verdict {
	if v := idleFile(t, "the file is being written; close it first"); !v.Allowed() {
		return v
	}
	if !o.AllowDelete {
		return refuse(syscall.EPERM, "S6", "deleting objects needs --allow-delete")
	}
	return Verdict{}
}

// idleFile refuses a file operation on what is not a file (S6) or on a file being written
// (S2, saying why).
func idleFile(t Target, writing string) Verdict {
	switch {
	case t.Dir:
		return refuse(syscall.EISDIR, "S6", "is a directory")
	case !t.Exists:
		return refuse(syscall.ENOENT, "S6", "no such file")
	case t.BeingWritten:
		return refuse(syscall.EPERM, "S2", writing)
	}
	return Verdict{}
}

// Rmdir removes an empty directory that mkdir made (S7). children: the directory lists a
// visible entry; inBucket: the bucket has keys at or below it (a marker, or hidden keys), and
// streaming mode never deletes what it did not create.
func Rmdir(t Target, children, inBucket bool) Verdict {
	switch {
	case !t.Exists:
		return refuse(syscall.ENOENT, "S7", "no such directory")
	case !t.Dir:
		return refuse(syscall.ENOTDIR, "S7", "not a directory")
	case children:
		return refuse(syscall.ENOTEMPTY, "S7", "directory not empty")
	case inBucket:
		return refuse(syscall.EPERM, "S7", "the directory exists in the bucket; streaming mode does not delete directory markers")
	}
	return Verdict{}
}

// Upload is a write handle's progress (S4): the bytes accepted so far, whether the upload
// failed (a write out of sequence, or the store failed a part or the completion: the upload is
// gone and nothing will be committed), and whether it is complete (fsync, or the opener's
// close, committed the object). The zero Upload is a handle just opened.
type Upload struct {
	Written  int64
	Failed   bool
	Complete bool
	// ClosedEmpty: the opener closed the file before it wrote anything (Close).
	ClosedEmpty bool
}

// Write is a write of n bytes at off. Writes are sequential: any other offset than the bytes
// accepted so far is EINVAL and fails the upload. After a failure writes are EIO; after the
// commit EPERM (the object is in the bucket; replacing it takes a new open with O_TRUNC).
func (u Upload) Write(off int64, n int) (Upload, Verdict) {
	switch {
	case u.Failed:
		return u, refuse(syscall.EIO, "S4", "the upload of this file failed earlier; nothing of it is stored")
	case u.Complete:
		return u, refuse(syscall.EPERM, "S4", "the file was already committed to the bucket by close or fsync; reopen it with O_TRUNC to replace it")
	case off != u.Written:
		u.Failed = true
		return u, refuse(syscall.EINVAL, "S4", "streaming writes must be sequential from offset 0; the upload was aborted")
	}
	u.Written += int64(n)
	return u, Verdict{}
}

// Fail records that the store failed the upload.
func (u Upload) Fail() Upload {
	u.Failed = true
	return u
}

// Commit is fsync, or the close by the process that opened the file (S4, S5): the first
// commit of an upload that has not failed completes it (commit is true: put the object in the
// bucket, an empty one if nothing was written); a later one has nothing to do. A failed
// upload is EIO: the program learns that its file was not stored.
func (u Upload) Commit() (next Upload, commit bool, v Verdict) {
	switch {
	case u.Failed:
		return u, false, refuse(syscall.EIO, "S4", "the upload of this file failed; nothing of it is stored")
	case u.Complete:
		return u, false, Verdict{}
	}
	u.Complete = true
	return u, true, Verdict{}
}

// Close is the opener's close(2) (S5). After the opener wrote, or after a failure, it is
// Commit. Closed empty, nothing is committed yet: a shell opens, dup2s and closes the first
// descriptor before writing through the other, and touch closes a file it never wrote, so
// the upload completes at the last close (Commit) instead.
func (u Upload) Close() (next Upload, commit bool, v Verdict) {
	if u.Written == 0 && !u.Failed && !u.Complete {
		u.ClosedEmpty = true
		return u, false, Verdict{}
	}
	return u.Commit()
}

// OwedAtEnd reports an upload whose opener closed the file empty and that nothing was
// written to or committed since: the kernel drops the last closes it has not sent when the
// mount ends, and such a file is then committed by the mount itself (S5). A file written to
// after such a close may still have been being written: it is not.
func (u Upload) OwedAtEnd() bool {
	return u.ClosedEmpty && u.Written == 0 && !u.Failed && !u.Complete
}

// WriteHandle is S10: an open is decided at open, not at first use. O_RDONLY, and O_RDWR
// without O_TRUNC on an existing file, make a read handle (writes through it fail); create,
// and O_WRONLY or O_RDWR with O_TRUNC, make a write handle, which replaces the object (S6).
func WriteHandle(write, read, trunc bool) bool { return write && !(read && !trunc) }

// Unsupported is S8's answer to what S3 cannot do in place: rename (S3 has no rename, and
// copying every object is not what a program expects of rename(2)), links, symbolic links,
// special files, extended attributes and fallocate.
func Unsupported(op string) Verdict {
	return refuse(syscall.ENOTSUP, "S8", op+" is not supported in streaming mode; use --sync-dir for full file semantics")
}

// SetAttr is S8 for the setattr(2) family on t: permissions and owners come from the mount
// options, so chmod and chown are EPERM; a size can only be the one a file being written
// already has (written is that size); times can be set only on a file being written, where
// the upload's time replaces them, or on a directory, where they have no effect.
func SetAttr(t Target, mode, owner, times bool, size *int64, written int64) Verdict {
	switch {
	case mode || owner:
		return refuse(syscall.EPERM, "S8", "chmod and chown are not supported in streaming mode; permissions come from --uid, --gid, --file-mode and --dir-mode")
	case size != nil && (!t.BeingWritten || *size != written):
		return refuse(syscall.ENOTSUP, "S8", "truncate is not supported in streaming mode; open with O_TRUNC to replace a file, or use --sync-dir")
	case times && !t.BeingWritten && !t.Dir:
		return refuse(syscall.EPERM, "S8", "times can only be set on a file being written in streaming mode")
	}
	return Verdict{}
}
