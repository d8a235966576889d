// Package vfs owns what both file-system cores (impl/streamfs, impl/syncfs) and the FUSE
// adapter (mount/) share: inode and handle ids, attributes, lookup and directory entries, the
// shapes of open and setattr requests, the error type with its codes, the one table from a
// cause to a code, the name check, the handle table, open directories and the kernel's lookup
// count. It does no I/O.
package vfs

import (
	"os"
	"time"

	"github.com/mount-s3/mount-s3/spec/keymap"
)

// InodeID identifies an inode for the life of a mount. RootID is the mount root.
type InodeID uint64

// HandleID identifies an open file or directory.
type HandleID uint64

// RootID is the inode number of the mount root, as FUSE requires.
const RootID InodeID = 1

// MinimalTTL is the TTL of `--metadata-ttl minimal`: long enough that one `ls -l` does not
// ask the store twice about each name, short enough that other writers' changes show at once.
const MinimalTTL = time.Second

// Attr is what stat shows for an inode (S9).
type Attr struct {
	Inode InodeID
	Size  uint64
	Mode  os.FileMode // type bits and permissions
	Nlink uint32
	UID   uint32
	GID   uint32
	Atime time.Time
	Mtime time.Time
	Ctime time.Time
	Rdev  uint32 // a device's number (sync mode's special files)
}

// Caller is who asked for an operation: the process (thread group) and its owner, which
// sync mode gives to the files it creates.
type Caller struct {
	Pid      uint32
	UID, GID uint32
}

// Process is the process (thread group) that sent a request. The kernel names the thread;
// finding its process costs system calls (more for a thread that is not its group's leader,
// as in any Go, Java or Python program with threads), and only streaming mode's writes need
// it (S5), so ID finds it when it is first asked, not for every open and close.
type Process interface{ ID() uint32 }

// PID is a Process whose id is already known.
type PID uint32

// ID implements Process.
func (p PID) ID() uint32 { return uint32(p) }

// Entry is the answer to a lookup: the child's attributes and how long the kernel may keep
// the name and the attributes.
type Entry struct {
	Attr    Attr
	Expires time.Time
	// Generation tells apart two files the kernel sees at one inode number: a file created
	// where the kernel still holds a deleted one's inode gets a new generation, and the kernel
	// then takes it for a new inode instead of sharing the old one's pages (streaming mode).
	Generation uint64
}

// StatFS describes the file system for statfs(2). S3 has no capacity, so it reports a large
// constant that keeps programs that check free space happy.
type StatFS struct {
	BlockSize   uint32
	Blocks      uint64
	BlocksFree  uint64
	Inodes      uint64
	InodesFree  uint64
	MaxNameLen  uint32
	IOBlockSize uint32
}

// DirEntry is one entry of a directory listing as readdir returns it. Offset is the value
// to pass to ReadDir to continue after this entry.
type DirEntry struct {
	Offset uint64
	Inode  InodeID
	Name   string
	Kind   keymap.Kind
	// Type is the type of an entry that is neither a regular file nor a directory
	// (os.ModeSymlink, os.ModeNamedPipe, os.ModeSocket, os.ModeDevice with or without
	// os.ModeCharDevice; sync mode only); Kind is then keymap.File.
	Type os.FileMode
}

// SetAttrRequest is a setattr(2) family call; nil fields are not changed.
type SetAttrRequest struct {
	Size  *uint64
	Mode  *os.FileMode
	UID   *uint32
	GID   *uint32
	Atime *time.Time
	Mtime *time.Time
}

// OpenFlags are the parts of open(2)'s flags the file system cares about.
type OpenFlags struct {
	Write  bool // O_WRONLY or O_RDWR
	Read   bool // O_RDONLY or O_RDWR
	Trunc  bool // O_TRUNC
	Direct bool // O_DIRECT: metadata is checked with the store (S3)
}
