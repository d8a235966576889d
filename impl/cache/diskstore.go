package cache

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// tmpPrefix marks a block file being written. A crash leaves it behind; scan removes it.
	tmpPrefix = ".tmp-"
	// touchEvery: a hit sets the file's mtime (the recency scan restores after a remount)
	// at most this often, since the order across a remount only needs to be roughly right
	// and a syscall per 4 KiB read would not be free. In memory the order is exact.
	touchEvery = time.Minute
	// fanout is the number of subdirectories (by the name's first two hex digits), which
	// keeps directories small enough for fast lookups on every file system.
	fanout = 256
)

// diskStore is the disk backend: block files under dir/xx/<name> and an in-memory index of
// them in least-recently-used order. The index is the truth for what is cached: a file
// it does not list is never read, and is overwritten when its block is stored again.
//
// d.mu guards only the index; block files are read and written without it, and the engine's
// flights ensure one block is never read and written at once. Evicted files are unlinked
// under it, so that an eviction can never delete a newer file stored under the same name.
type diskStore struct {
	codec
	dir string
	max int64

	mu      sync.Mutex
	entries map[string]*list.Element // GUARDED_BY(mu): name -> element of lru (*entry)
	lru     *list.List               // GUARDED_BY(mu): front is the most recently used
	used    int64                    // GUARDED_BY(mu): sum of the entries' sizes

	corrupt, evictions atomic.Int64
}

type entry struct {
	name    string
	size    int64
	writing bool      // reserved, file not yet in place: not loadable, not evictable
	touched time.Time // last recency written to the file's mtime
}

func newDiskStore(c codec, dir string, max int64) *diskStore {
	return &diskStore{codec: c, dir: dir, max: max, entries: map[string]*list.Element{}, lru: list.New()}
}

func (d *diskStore) path(name string) string { return filepath.Join(d.dir, name[:2], name) }

// scan builds the index from the directory: files by mtime (last use), temp files deleted,
// then eviction down to the limit, which may have shrunk since the last mount.
// LOCKS_EXCLUDED(d.mu)
func (d *diskStore) scan() error {
	type found struct {
		name  string
		size  int64
		mtime time.Time
	}
	var all []found
	for i := 0; i < fanout; i++ {
		sub := filepath.Join(d.dir, fmt.Sprintf("%02x", i))
		des, err := os.ReadDir(sub)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		for _, de := range des {
			name := de.Name()
			if strings.HasPrefix(name, tmpPrefix) {
				_ = os.Remove(filepath.Join(sub, name))
				continue
			}
			if !de.Type().IsRegular() || !isBlockName(name) || name[:2] != filepath.Base(sub) {
				continue
			}
			info, err := de.Info()
			if err != nil {
				continue // removed meanwhile
			}
			all = append(all, found{name, info.Size(), info.ModTime()})
		}
	}
	sort.Slice(all, func(a, b int) bool { return all[a].mtime.Before(all[b].mtime) })
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, f := range all {
		d.entries[f.name] = d.lru.PushFront(&entry{name: f.name, size: f.size, touched: f.mtime})
		d.used += f.size
	}
	d.evict(0)
	return nil
}

func isBlockName(s string) bool {
	if len(s) != 32 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// mayHave implements backend.
// LOCKS_EXCLUDED(d.mu)
func (d *diskStore) mayHave(id blockID) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.entries[d.name(id)] != nil
}

// load implements backend.
// LOCKS_EXCLUDED(d.mu)
func (d *diskStore) load(_ context.Context, id blockID) (block, bool) {
	name := d.name(id)
	now := time.Now()
	d.mu.Lock()
	el := d.entries[name]
	if el == nil || el.Value.(*entry).writing {
		d.mu.Unlock()
		return block{}, false
	}
	d.lru.MoveToFront(el)
	en := el.Value.(*entry)
	touch := now.Sub(en.touched) >= touchEvery
	if touch {
		en.touched = now
	}
	d.mu.Unlock()

	path := d.path(name)
	buf, err := d.readFile(path)
	var blk block
	if err == nil {
		blk, err = d.decode(buf, id)
	}
	if err == nil {
		if touch {
			_ = os.Chtimes(path, time.Time{}, now)
		}
		return blk, true
	}
	if errors.Is(err, errCorrupt) {
		d.corrupt.Add(1)
	}
	// Corrupt, truncated, unreadable, or deleted behind our back: forget it (and delete
	// it) so that the block is fetched again and stored afresh.
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.entries[name] == el {
		d.remove(el)
	}
	return block{}, false
}

// readFile reads a block file, refusing (as corrupt) one too large to be a block rather
// than reading whatever was put there.
func (d *diskStore) readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if info.Size() > d.bs+fixedLen+3*maxNameLen+trailerLen {
		return nil, errCorrupt
	}
	buf := make([]byte, info.Size())
	_, err = io.ReadFull(f, buf)
	return buf, err
}

// store implements backend: it reserves room (evicting), writes a temp file and renames it
// into place, so a reader or a crash never sees half a block under a block name.
// LOCKS_EXCLUDED(d.mu)
func (d *diskStore) store(_ context.Context, id blockID, b block) {
	head, trailer, ok := d.encode(id, b)
	if !ok {
		return
	}
	name, size := d.name(id), int64(len(head)+len(b.data)+len(trailer))
	d.mu.Lock()
	if old := d.entries[name]; old != nil && !old.Value.(*entry).writing {
		d.remove(old) // another block under the same name, now replaced
	}
	if d.entries[name] != nil || !d.evict(size) {
		d.mu.Unlock()
		return // too big for the limit, or the rest is being written right now
	}
	en := &entry{name: name, size: size, writing: true, touched: time.Now()}
	el := d.lru.PushFront(en)
	d.entries[name] = el
	d.used += size
	d.mu.Unlock()

	err := d.write(name, head, b.data, trailer)
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		d.remove(el)
		return
	}
	en.writing = false
}

func (d *diskStore) write(name string, parts ...[]byte) error {
	sub := filepath.Join(d.dir, name[:2])
	f, err := os.CreateTemp(sub, tmpPrefix+"*")
	if errors.Is(err, fs.ErrNotExist) {
		// Subdirectories are made on first use: 256 mkdirs would slow every first mount.
		if err = os.MkdirAll(sub, 0o700); err == nil {
			f, err = os.CreateTemp(sub, tmpPrefix+"*")
		}
	}
	if err != nil {
		return err
	}
	// No fsync: after a crash a block is either intact or fails its checksum and is
	// refetched, and a cache is not worth the latency of making it durable.
	for _, p := range parts {
		if err == nil {
			_, err = f.Write(p)
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), d.path(name))
	}
	if err != nil {
		_ = os.Remove(f.Name())
	}
	return err
}

// evict removes least recently used blocks until need more bytes fit under the limit, and
// says whether they do. Blocks being written are skipped: they are the newest anyway.
// LOCKS_REQUIRED(d.mu)
func (d *diskStore) evict(need int64) bool {
	if need > d.max {
		return false
	}
	for el := d.lru.Back(); el != nil && d.used+need > d.max; {
		prev := el.Prev()
		if !el.Value.(*entry).writing {
			d.remove(el)
			d.evictions.Add(1)
		}
		el = prev
	}
	return d.used+need <= d.max
}

// remove drops an entry and deletes its file.
// LOCKS_REQUIRED(d.mu)
func (d *diskStore) remove(el *list.Element) {
	en := d.lru.Remove(el).(*entry)
	delete(d.entries, en.name)
	d.used -= en.size
	// Should this fail, the file outlives its entry: it is never read, is overwritten if
	// its block is stored again, and the next scan counts it again.
	_ = os.Remove(d.path(en.name))
}

// LOCKS_EXCLUDED(d.mu)
func (d *diskStore) stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return Stats{
		Corrupt:   d.corrupt.Load(),
		Evictions: d.evictions.Load(),
		Blocks:    int64(d.lru.Len()),
		Bytes:     d.used,
		MaxBytes:  d.max,
	}
}
