// Package syncfs is the file system of sync mode (--sync-dir, rules Y and C of
// docs/SEMANTICS.md): full POSIX file semantics served from the durable local layer
// (impl/sync/local), with the bucket's metadata imported on first access (Y1) and the data of
// large files streamed from the bucket until a program writes them (Y2).
//
// It owns the kernel-facing side of sync mode: inode numbers and their paths (which follow
// renames), open handles, and the translation of local-layer errors into vfs codes. It decides
// no sync rule itself: the local layer applies spec/syncrule on every change, the importer
// brings bucket state in, and the write-back engine is only told that something changed.
//
// # Locks
//
// FS.mu guards the inode and handle tables only. It is never held across a call into the
// local layer, the importer or the store, so a slow import of one directory never blocks an
// operation on another. A file handle's lock guards only the swap of its remote reader (and
// the readers it retired); reads, writes and syncs take none, since the local layer orders the
// changes to one file (its open file's lock) and a reader is safe for concurrent use.
package syncfs
