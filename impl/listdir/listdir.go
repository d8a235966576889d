// Package listdir reads one directory's delimited listing from the store, page by page, the
// one way every part of the product reads one: streaming mode's lookups, readdir, rmdir and
// walks, and sync mode's importer and watcher. spec/keymap decides what the keys mean (K1-K4:
// hidden names, a directory shadowing a file of its name, the directory's own marker).
//
// It must not: cache, decide a rule itself, or list anything but the one directory asked for.
package listdir

import (
	"context"
	"strings"

	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/spec/keymap"
)

// Listing is what the pages read said about a directory.
type Listing struct {
	// Names are the keys and common prefixes as keymap reads them; Entries() are the
	// directory's entries.
	Names keymap.Listing
	// Objects are the objects directly under the directory by name relative to it, hidden
	// ones and the directory's own marker ("") included.
	Objects map[string]s3.ObjectInfo
	// InBucket: the pages held at least one key or common prefix.
	InBucket bool
}

// Marker is the directory's own marker object ("dir/"), if the bucket has one. The mount's
// root has none (K8).
func (l *Listing) Marker(dir string) (s3.ObjectInfo, bool) {
	if dir == "" {
		return s3.ObjectInfo{}, false
	}
	o, ok := l.Objects[""]
	return o, ok
}

// Read lists directory dir ("" for the mount's root) under prefix, every page, or until done
// (if not nil) says the pages so far are enough. A store error is returned as it is.
func Read(ctx context.Context, store s3.Store, prefix, dir string, done func(*keymap.Listing) bool) (*Listing, error) {
	return ReadFrom(ctx, store, prefix, dir, "", done)
}

// ReadFrom is Read from the page that continuation token starts ("": the first).
func ReadFrom(ctx context.Context, store s3.Store, prefix, dir, token string, done func(*keymap.Listing) bool) (*Listing, error) {
	l := &Listing{Objects: map[string]s3.ObjectInfo{}}
	p := ResumePager(store, prefix, dir, token)
	for {
		page, err := p.Next(ctx)
		if err != nil {
			return nil, err
		}
		l.add(p.DirKey, page)
		if p.Done() || (done != nil && done(&l.Names)) {
			return l, nil
		}
	}
}

// Pager reads directory dir's delimited listing one page at a time, for a reader that hands
// entries out before the last page (a readdir of a big directory).
type Pager struct {
	DirKey string // the directory's key prefix; a page's keys are relative to it
	store  s3.Store
	token  string
	done   bool
}

// NewPager starts reading directory dir ("" for the mount's root) under prefix. It does no I/O.
func NewPager(store s3.Store, prefix, dir string) *Pager {
	return &Pager{DirKey: keymap.DirKey(prefix, dir), store: store}
}

// ResumePager is NewPager for a listing whose pages before continuation token were read
// already (the first page a lookup read, for one).
func ResumePager(store s3.Store, prefix, dir, token string) *Pager {
	return &Pager{DirKey: keymap.DirKey(prefix, dir), store: store, token: token}
}

// Next reads the next page. After an error the same page is asked for again.
func (p *Pager) Next(ctx context.Context) (s3.ListPage, error) {
	page, err := p.store.List(ctx, s3.ListInput{Prefix: p.DirKey, Delimiter: keymap.Delimiter, ContinuationToken: p.token})
	if err != nil {
		return s3.ListPage{}, err
	}
	p.token, p.done = page.NextContinuationToken, page.NextContinuationToken == ""
	return page, nil
}

// Done reports whether the last page has been read.
func (p *Pager) Done() bool { return p.done }

// Page is a directory's listing read from one page of it, the first: a lookup asks for one
// (delimited, under the directory's key) anyway, and when it holds the whole directory it
// answers the lookups and the readdir that follow. page must be the answer to
// List(Prefix: DirKey(prefix, dir), Delimiter: keymap.Delimiter). complete: it was the last
// page. Otherwise upTo is the greatest name relative to the directory that it shows (a common
// prefix keeps its trailing delimiter): every key up to it is in the page.
func Page(prefix, dir string, page s3.ListPage) (l *Listing, complete bool, upTo string) {
	dirKey := keymap.DirKey(prefix, dir)
	l = &Listing{Objects: map[string]s3.ObjectInfo{}}
	upTo = l.add(dirKey, page)
	return l, page.NextContinuationToken == "", upTo
}

// add takes in one page of the listing of the directory whose key is dirKey, and returns the
// greatest relative key or common prefix on it.
func (l *Listing) add(dirKey string, page s3.ListPage) (upTo string) {
	for _, o := range page.Objects {
		rel := strings.TrimPrefix(o.Key, dirKey)
		l.Names.AddObject(rel)
		l.Objects[rel] = o
		upTo = max(upTo, rel)
	}
	for _, p := range page.CommonPrefixes {
		rel := strings.TrimPrefix(p, dirKey)
		l.Names.AddCommonPrefix(rel)
		upTo = max(upTo, rel)
	}
	l.InBucket = l.InBucket || len(page.Objects) > 0 || len(page.CommonPrefixes) > 0
	return upTo
}
