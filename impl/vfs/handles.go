package vfs

import (
	"context"
	"sync"

	"github.com/mount-s3/mount-s3/spec/keymap"
)

// Handles is a core's table of open files and directories, by the number the kernel names
// them with. Its lock is a leaf: a core calls it while holding its own lock, and nothing is
// called with it held but Each's function, which must not take the core's lock.
type Handles struct {
	mu   sync.Mutex
	last HandleID         // GUARDED_BY(mu): the last number given out
	open map[HandleID]any // GUARDED_BY(mu)
}

// Add records an open handle and returns its number, never 0 and never reused.
func (t *Handles) Add(h any) HandleID {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.open == nil {
		t.open = map[HandleID]any{}
	}
	t.last++
	t.open[t.last] = h
	return t.last
}

// Get returns handle id, or nil if it is not open.
func (t *Handles) Get(id HandleID) any {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.open[id]
}

// Remove closes handle id in the table and returns what it was, or nil.
func (t *Handles) Remove(id HandleID) any {
	t.mu.Lock()
	defer t.mu.Unlock()
	h := t.open[id]
	delete(t.open, id)
	return h
}

// Each calls fn for every open handle, in no order, until fn returns false.
func (t *Handles) Each(fn func(HandleID, any) bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, h := range t.open {
		if !fn(id, h) {
			return
		}
	}
}

// HandleOf returns handle id if it is open and of type T; otherwise an error of CodeBadHandle
// for op (a bug in the caller or the kernel: the adapter only passes numbers it was given).
func HandleOf[T any](t *Handles, id HandleID, op string) (T, error) {
	h, ok := t.Get(id).(T)
	if !ok {
		return h, NewError(op, "", CodeBadHandle, "unknown handle")
	}
	return h, nil
}

// DirHandle is an open directory, for both cores. Its listing is taken at offset 0 (opendir,
// rewinddir) and later offsets index into it, so a directory read in several calls neither
// skips nor repeats an entry while it changes. A listing may come in parts (Listing.More):
// each part is appended when a read reaches the end of what the handle holds.
type DirHandle struct {
	Inode InodeID
	Path  string

	mu      sync.Mutex
	entries []DirEntry                                      // GUARDED_BY(mu); nil until listed
	more    func(context.Context) ([]DirEntry, bool, error) // GUARDED_BY(mu); nil: the listing is whole
}

// Listing is a directory's entries as a core lists them for a DirHandle: the directory's
// parent (for "..") and its children in the order readdir returns them. More, if not nil,
// returns the next children (done: there are no more after them), so that a big directory's
// first entries are not held back until its last page is read; it is called with the
// context of the read that needs them.
type Listing struct {
	Parent   InodeID
	Children []DirEntry
	More     func(ctx context.Context) (children []DirEntry, done bool, err error)
}

// Read returns the entries after offset (0 for the start): ".", ".." and the children, each
// with its offset. At offset 0, or before the first listing, it calls list for a fresh one.
// Calls on one handle are serialised, so a rewinddir never interleaves with a read.
func (d *DirHandle) Read(ctx context.Context, offset uint64, list func() (Listing, error)) ([]DirEntry, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if offset == 0 || d.entries == nil {
		l, err := list()
		if err != nil {
			return nil, err
		}
		entries := d.append(make([]DirEntry, 0, len(l.Children)+2), []DirEntry{
			{Inode: d.Inode, Name: ".", Kind: keymap.Dir},
			{Inode: l.Parent, Name: "..", Kind: keymap.Dir}})
		d.entries, d.more = d.append(entries, l.Children), l.More
	}
	for offset >= uint64(len(d.entries)) && d.more != nil {
		children, done, err := d.more(ctx)
		if err != nil {
			return nil, err // the next read asks for the same part again
		}
		d.entries = d.append(d.entries, children)
		if done {
			d.more = nil
		}
	}
	if offset >= uint64(len(d.entries)) {
		return nil, nil
	}
	return d.entries[offset:], nil
}

// append adds children to entries, numbering each with its offset (the next entry's index).
// REQUIRES: d.mu held.
func (d *DirHandle) append(entries, children []DirEntry) []DirEntry {
	for _, c := range children {
		c.Offset = uint64(len(entries) + 1)
		entries = append(entries, c)
	}
	return entries
}

// Lookups is the kernel's count of references to an inode: each entry the core answers with
// adds one, and FORGET takes back the number it says.
type Lookups uint64

// Add counts one more reference.
func (l *Lookups) Add() { *l++ }

// Forget takes n references back, never below zero, and reports whether none is left.
func (l *Lookups) Forget(n uint64) bool {
	*l -= Lookups(min(n, uint64(*l)))
	return *l == 0
}
