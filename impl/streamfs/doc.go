// Package streamfs is streaming mode's file-system core, free of FUSE: inodes with numbers that
// are stable for the life of the mount, lookup, attributes, directory listings and open files,
// each read from and written to the bucket directly. What it shares with sync mode's core and
// the adapter (ids, entries, attributes, the error type and its codes) is impl/vfs.
// mount/ translates kernel operations into calls of this package and nothing more; tests drive
// it directly without a kernel.
//
// Every rule about names, visibility, shadowing and listing order is asked of spec/keymap;
// this package never re-derives one. The store (impl/s3.Store) is the only way out.
//
// LOCK ORDERING
//
//	handle.mu < FS.mu
//
// A goroutine holding FS.mu never takes a handle's lock and never waits on the network:
// FS.mu guards the inode and handle tables only, so a slow GET on one file never blocks a
// lookup of another. Handle locks serialise operations on one open file and may be held
// across store calls.
package streamfs
