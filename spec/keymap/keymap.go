// Package keymap is the executable specification of how S3 keys become paths (rules K1-K8 of
// docs/SEMANTICS.md). It is pure: no I/O, no goroutines, no clock. The implementation consults
// it for every decision about names, visibility, shadowing and listing order, so that "the
// mount follows the specification" can be checked by property tests and fuzzing.
//
// Vocabulary: a *key* is a full S3 key. A *relative key* is a key with the mount prefix removed.
// A *path* is a slash-separated path below the mount root without a leading slash; the root is
// the empty path. A *name* is one path component.
package keymap

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// MaxNameLen is the longest component a path may have (K3); Linux's NAME_MAX.
const MaxNameLen = 255

// Delimiter is the only separator of key components (K1); '\' is an ordinary byte.
const Delimiter = "/"

// ValidName reports whether name can be a component of a visible path (K3): it is not empty,
// not "." or "..", holds no '/' and no NUL byte, and is at most MaxNameLen bytes. Any other
// byte string is valid, including invalid UTF-8 (K5).
func ValidName(name string) bool {
	if name == "" || name == "." || name == ".." || len(name) > MaxNameLen {
		return false
	}
	return !strings.ContainsAny(name, "/\x00")
}

// ValidatePrefix checks a mount prefix (K8): empty, or a sequence of valid names each followed
// by '/'. The error says what is wrong, for the CLI to print.
func ValidatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if !strings.HasSuffix(prefix, Delimiter) {
		return fmt.Errorf("prefix %q must end in %q", prefix, Delimiter)
	}
	for _, c := range strings.Split(strings.TrimSuffix(prefix, Delimiter), Delimiter) {
		if !ValidName(c) {
			return fmt.Errorf("prefix %q has an invalid component %q (empty, '.', '..', NUL or longer than %d bytes)", prefix, c, MaxNameLen)
		}
	}
	return nil
}

// ValidPath reports whether path (no leading or trailing '/') is a path that can be shown:
// the root (empty) or valid names joined by '/'.
func ValidPath(path string) bool {
	if path == "" {
		return true
	}
	for _, c := range strings.Split(path, Delimiter) {
		if !ValidName(c) {
			return false
		}
	}
	return true
}

// Join appends name to the directory path dir.
func Join(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + Delimiter + name
}

// Below reports whether path p is strictly inside directory dir: a child of it or deeper. The
// root ("") has every other path below it.
func Below(p, dir string) bool {
	if dir == "" {
		return p != ""
	}
	return len(p) > len(dir) && p[len(dir)] == Delimiter[0] && p[:len(dir)] == dir
}

// ChildToward names the entry of directory dir on the way to path, which lies below it: the
// path's own name if it is a child of dir (deeper false), else the child directory it lies in
// (deeper true). ok is false if path is not below dir.
func ChildToward(dir, path string) (name string, deeper, ok bool) {
	if !Below(path, dir) {
		return "", false, false
	}
	rel := path
	if dir != "" {
		rel = path[len(dir)+1:]
	}
	name, _, deeper = strings.Cut(rel, Delimiter)
	return name, deeper, true
}

// Split returns the parent directory path and the last name of path. The root has no parent:
// Split("") returns ("", "").
func Split(path string) (dir, name string) {
	i := strings.LastIndex(path, Delimiter)
	if i < 0 {
		return "", path
	}
	return path[:i], path[i+1:]
}

// FileKey is the key of the object shown at path as a file (K7).
// REQUIRES: ValidPath(path) && path != "".
func FileKey(prefix, path string) string { return prefix + path }

// DirKey is the key prefix under which the directory at path lists its entries, which is also
// the key of its marker object (K2, K7). The root's is the mount prefix itself (K8).
func DirKey(prefix, path string) string {
	if path == "" {
		return prefix
	}
	return prefix + path + Delimiter
}

// ErrOutsidePrefix is returned by PathOfKey for a key that does not start with the prefix (K8).
var ErrOutsidePrefix = errors.New("key is outside the mount prefix")

// ErrHiddenKey is returned by PathOfKey for a key that is never shown (K3).
var ErrHiddenKey = errors.New("key is hidden")

// PathOfKey maps a key back to the path it is shown at (K7): a file path for an object key,
// a directory path (dir=true) for a key ending in '/', which is a directory marker (K2). The
// mount prefix itself maps to the root directory. Hidden keys (K3) and keys outside the prefix
// (K8) are errors. PathOfKey does not consider shadowing (K4): that needs the other keys.
func PathOfKey(prefix, key string) (path string, dir bool, err error) {
	if !strings.HasPrefix(key, prefix) {
		return "", false, ErrOutsidePrefix
	}
	rel := key[len(prefix):]
	if rel == "" {
		return "", true, nil
	}
	if strings.HasSuffix(rel, Delimiter) {
		rel = strings.TrimSuffix(rel, Delimiter)
		dir = true
	}
	// rel == "" here means the key is PREFIX + "/": an empty component (K3), not the root.
	if rel == "" || !ValidPath(rel) {
		return "", false, ErrHiddenKey
	}
	return rel, dir, nil
}

// Visible reports whether a key names something the mount may show, write or delete (K3, K8):
// it is inside the prefix and every component of its relative key is a valid name.
func Visible(prefix, key string) bool {
	_, _, err := PathOfKey(prefix, key)
	return err == nil
}

// Kind is what a visible name is.
type Kind uint8

const (
	File Kind = iota + 1
	Dir
)

func (k Kind) String() string {
	switch k {
	case File:
		return "file"
	case Dir:
		return "dir"
	}
	return "none"
}

// Entry is one name in a directory listing.
type Entry struct {
	Name string
	Kind Kind
}

// Listing accumulates one directory's delimited listing (ListObjectsV2 with Delimiter "/"
// and the directory's DirKey as prefix), page by page, and yields its entries in the order
// and with the visibility the rules require. The zero value is ready to use.
//
// S3 orders a listing by full key, so the object "-a-" comes before the common prefix "-a/"
// while the names order "-a" before "-a-": entries can only be ordered once all pages are in.
type Listing struct {
	dirs  map[string]bool
	files map[string]bool
}

// AddObject records an object from the listing, given by its key relative to the directory's
// key prefix (so it has no '/'). The directory's own marker (relative key "") is not an entry
// (K2); names that are not valid are hidden (K3).
func (l *Listing) AddObject(rel string) {
	if !ValidName(rel) {
		return
	}
	if l.files == nil {
		l.files = map[string]bool{}
	}
	l.files[rel] = true
}

// AddCommonPrefix records a common prefix from the listing, relative to the directory's key
// prefix and ending in '/' (K1). A prefix whose name is not valid (as "/" from a key "d//x",
// or "./") adds nothing (K3).
func (l *Listing) AddCommonPrefix(rel string) {
	name := strings.TrimSuffix(rel, Delimiter)
	if !ValidName(name) {
		return
	}
	if l.dirs == nil {
		l.dirs = map[string]bool{}
	}
	l.dirs[name] = true
}

// Entries returns the directory's entries: each name once, a name that is both a common
// prefix and an object as a directory (K4, K6), in byte order of the names (K6).
func (l *Listing) Entries() []Entry {
	out := make([]Entry, 0, len(l.dirs)+len(l.files))
	for n := range l.dirs {
		out = append(out, Entry{Name: n, Kind: Dir})
	}
	for n := range l.files {
		if !l.dirs[n] {
			out = append(out, Entry{Name: n, Kind: File})
		}
	}
	SortEntries(out)
	return out
}

// Covered reports whether a delimited listing read in key order as far as upTo (as for
// Settled) has shown both keys of name, its file key and its directory prefix "name/" (the
// greater): what it says name is, or that name is absent, holds (K4).
func Covered(name, upTo string) bool { return name+Delimiter <= upTo }

// Settled reports whether a delimited listing read in key order as far as upTo (the greatest
// key or common prefix it has shown, relative to the directory's key prefix) can still add a
// name that sorts before name, or change what name is (K6): S3 orders by key, so the prefix
// "a/" that makes the directory "a" comes after the key "a-b", as does any "p/" whose name p
// is a prefix of name followed by a byte below '/'. A settled name may be handed out before
// the listing's last page: no later page puts a name before it or shadows it (K4).
func Settled(name, upTo string) bool {
	if !Covered(name, upTo) {
		return false
	}
	for i := 1; i < len(name); i++ {
		if name[i] < Delimiter[0] && name[:i]+Delimiter > upTo {
			return false
		}
	}
	return true
}

// TakeSettled removes from l and returns, in byte order (K6), the entries that no later page
// of the listing can precede or change: every entry up to the first one that is not Settled
// by upTo, whose name is returned as stop (left: there is one). What it leaves merges with
// later pages as if nothing had been taken; Entries then returns only what is left.
func (l *Listing) TakeSettled(upTo string) (taken []Entry, stop string, left bool) {
	for _, e := range l.Entries() {
		if !Settled(e.Name, upTo) {
			return taken, e.Name, true
		}
		taken = append(taken, e)
		delete(l.dirs, e.Name)
		delete(l.files, e.Name)
	}
	return taken, "", false
}

// SortEntries sorts entries in byte order of their names (K6). Go compares strings bytewise.
func SortEntries(es []Entry) {
	sort.Slice(es, func(i, j int) bool { return es[i].Name < es[j].Name })
}

// ResolveLookup decides what a name in a directory is from the two facts a lookup gathers:
// whether an object with the name's file key exists, and whether any key starts with the
// name's directory key (a marker or anything below it). A directory shadows a file (K4); with
// neither, the name does not exist (found=false).
func ResolveLookup(objectExists, anyKeyBelow bool) (kind Kind, found bool) {
	switch {
	case anyKeyBelow:
		return Dir, true
	case objectExists:
		return File, true
	}
	return 0, false
}

// Local is what a mount holds at a path besides the bucket (streaming mode's mkdir'd
// directories and files being written, S4 and S7).
type Local struct {
	Kind  Kind
	Is    bool // something local is at the path itself, of Kind
	Below bool // something local lies below the path, which keeps it a directory
}

// ResolveWithLocal decides what a name is from the bucket's answer (ResolveLookup) and what
// the mount holds locally, by K4 applied to both: a directory anywhere (in the bucket, made
// locally, or kept as the ancestor of a local entry) shadows a file; otherwise a local file
// (being written) shows over the bucket's; with neither, the name does not exist.
func ResolveWithLocal(bucket Kind, inBucket bool, local Local) (kind Kind, found bool) {
	switch {
	case local.Below, local.Is && local.Kind == Dir, inBucket && bucket == Dir:
		return Dir, true
	case local.Is:
		return local.Kind, true
	}
	return bucket, inBucket
}

// Tree is the whole visible tree that a set of keys makes under a prefix: path -> kind.
// The root ("") is always a directory. It is the reference the property tests and the model
// compare the mount against; the mount itself never needs the whole tree.
//
// A directory is shown for every proper prefix of a key (K1) whose components are all valid
// names, even when the rest of the key is hidden (K3): the directory is then empty. This is
// what a delimited listing shows, and it keeps a listing and a lookup in agreement.
func Tree(prefix string, keys []string) map[string]Kind {
	t := map[string]Kind{"": Dir}
	var files []string
	for _, key := range keys {
		if !strings.HasPrefix(key, prefix) {
			continue
		}
		comps := strings.Split(key[len(prefix):], Delimiter)
		path := ""
		valid := true
		for i, c := range comps {
			last := i == len(comps)-1
			if last && c == "" {
				break // a marker (K2) or the prefix itself: its directories are already in
			}
			if !ValidName(c) {
				valid = false
				break
			}
			path = Join(path, c)
			if !last {
				t[path] = Dir
			}
		}
		if valid && !strings.HasSuffix(key, Delimiter) && path != "" {
			files = append(files, path)
		}
	}
	for _, f := range files {
		if _, isDir := t[f]; !isDir {
			t[f] = File // K4: a directory of the same name shadows it
		}
	}
	return t
}

// Children returns the entries of directory dir in a tree made by Tree, in listing order (K6).
func Children(t map[string]Kind, dir string) []Entry {
	var out []Entry
	for p, k := range t {
		if p == "" {
			continue
		}
		if d, n := Split(p); d == dir {
			out = append(out, Entry{Name: n, Kind: k})
		}
	}
	SortEntries(out)
	return out
}
