package fuzz

import (
	"bytes"
	"errors"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/mount-s3/mount-s3/spec/keymap"
)

var (
	n255 = strings.Repeat("x", keymap.MaxNameLen)
	n256 = strings.Repeat("x", keymap.MaxNameLen+1)
)

// seedKeys are single keys full of what K1-K8 treat specially.
var seedKeys = []string{
	"", "a", "a/", "a/b", "a/b/", "/", "//", "/a", "a//", "a//b",
	".", "..", "./", "../", "./a", "../a", "a/.", "a/..", "a/./", "a/../", "a/./b", "a/../b",
	"...", ".a", "a.", "-a-", "-a/", "-a/x",
	"\x00", "a\x00", "a/\x00", "\x00/a", "a/b\x00c/d",
	`\`, `a\b`, `\/`, `..\`, `\..`, `a/\/b`,
	"\xff", "\xff/\xfe", "caf\xe9/\xc3\x28", "\xed\xa0\x80",
	n255, n256, n255 + "/", n256 + "/", "a/" + n255, "a/" + n256, n255 + "/" + n256,
	"p/", "p//", "p/a", "p/./", "p/../x", "pa", "p",
}

var seedPrefixes = []string{"", "p/", "a/", "a/b/", "\xff/", `\/`, n255 + "/", "/", "p", "./", "p//", n256 + "/"}

// FuzzPathKeyRoundTrip checks K7 (and K3, K8) on one key: for a prefix that passes
// ValidatePrefix, a key PathOfKey accepts maps to a valid path whose FileKey or DirKey is the
// key exactly; a key it rejects is not Visible, with the right error. The key read as a path,
// when valid, maps to keys that map back to it.
func FuzzPathKeyRoundTrip(f *testing.F) {
	for _, p := range seedPrefixes {
		for _, k := range seedKeys {
			f.Add(p, k)
			if p != "" {
				f.Add(p, p+k)
			}
		}
	}
	f.Fuzz(func(t *testing.T, prefix, key string) {
		if keymap.ValidatePrefix(prefix) != nil {
			return
		}
		path, dir, err := keymap.PathOfKey(prefix, key)
		if err != nil {
			if keymap.Visible(prefix, key) {
				t.Fatalf("PathOfKey(%q, %q) = %v but Visible", prefix, key, err)
			}
			want := keymap.ErrHiddenKey
			if !strings.HasPrefix(key, prefix) {
				want = keymap.ErrOutsidePrefix
			}
			if !errors.Is(err, want) {
				t.Fatalf("PathOfKey(%q, %q) = %v, want %v", prefix, key, err, want)
			}
		} else {
			if !keymap.Visible(prefix, key) {
				t.Fatalf("PathOfKey(%q, %q) ok but not Visible", prefix, key)
			}
			if !keymap.ValidPath(path) {
				t.Fatalf("PathOfKey(%q, %q) = invalid path %q", prefix, key, path)
			}
			var back string
			if dir {
				back = keymap.DirKey(prefix, path)
			} else {
				if path == "" {
					t.Fatalf("PathOfKey(%q, %q): the root as a file", prefix, key)
				}
				back = keymap.FileKey(prefix, path)
			}
			if back != key {
				t.Fatalf("K7: key %q -> (%q, dir=%v) -> key %q", key, path, dir, back)
			}
		}
		if key != "" && keymap.ValidPath(key) {
			if p, d, err := keymap.PathOfKey(prefix, keymap.FileKey(prefix, key)); err != nil || d || p != key {
				t.Fatalf("K7: path %q -> file key -> (%q, %v, %v)", key, p, d, err)
			}
			if p, d, err := keymap.PathOfKey(prefix, keymap.DirKey(prefix, key)); err != nil || !d || p != key {
				t.Fatalf("K7: path %q -> dir key -> (%q, %v, %v)", key, p, d, err)
			}
		}
	})
}

// FuzzListingMatchesTree checks that a Listing fed with the simulated delimited S3 listing of
// every directory of the tree (in S3 order, in pages of pageSize%8+1 entries) gives exactly
// Children of that directory, that lookups agree, and that the tree only shows what the keys
// allow (K1-K6, K8). data is the set of keys, one per '\n'-separated line; a prefix that does
// not pass ValidatePrefix is replaced by "".
func FuzzListingMatchesTree(f *testing.F) {
	sets := [][]string{
		{"-a-", "-a/", "-a/x"},
		{"a", "a/", "a/a", "a/a/"},
		{"a/.", "a/..", "a//", "a//b", "a/../b", "a/./b/c"},
		{"/", "//", "./", "../", ".", "..", "/a"},
		{"\x00", "a\x00/b", "d/\x00", "d/x"},
		{`\`, `\/`, `\/.`, `a\b`, `..\`},
		{"\xff", "\xff/\xfe", "caf\xe9", "caf\xe9/"},
		{n255, n256, n255 + "/a", n256 + "/a", "d/" + n255, "d/" + n256},
		{"p/", "p/a", "p//", "p", "pa/b", "q/c", "p/a/b/", "p/./x"},
		{"a.b", "a/", "a-b", "a/c"},
	}
	for _, s := range sets {
		data := []byte(strings.Join(s, "\n"))
		for _, p := range []string{"", "p/", "a/", "d/"} {
			f.Add(p, data, uint8(0))
			f.Add(p, data, uint8(1))
		}
	}
	f.Add("", []byte(strings.Join(seedKeys, "\n")), uint8(2))
	f.Add("p/", []byte(strings.Join(seedKeys, "\n")), uint8(3))
	f.Fuzz(func(t *testing.T, prefix string, data []byte, pageSize uint8) {
		if len(data) > 1<<13 {
			return
		}
		if keymap.ValidatePrefix(prefix) != nil {
			prefix = ""
		}
		keys := distinctSorted(data)
		if len(keys) > 256 {
			return
		}
		set := map[string]bool{}
		for _, k := range keys {
			set[k] = true
		}
		anyBelow := func(p string) bool {
			i := sort.SearchStrings(keys, p)
			return i < len(keys) && strings.HasPrefix(keys[i], p)
		}
		tree := keymap.Tree(prefix, keys)
		if tree[""] != keymap.Dir {
			t.Fatalf("K8: root is %v", tree[""])
		}
		for p, k := range tree {
			if !keymap.ValidPath(p) {
				t.Fatalf("K3: path %q shown", p)
			}
			if p == "" {
				continue
			}
			if d, _ := keymap.Split(p); tree[d] != keymap.Dir {
				t.Fatalf("K1: parent of %q is %v", p, tree[d])
			}
			switch k {
			case keymap.File:
				if !set[keymap.FileKey(prefix, p)] || anyBelow(keymap.FileKey(prefix, p)+"/") {
					t.Fatalf("K4/K7: file %q: key present %v, keys below %v", p,
						set[keymap.FileKey(prefix, p)], anyBelow(keymap.FileKey(prefix, p)+"/"))
				}
			case keymap.Dir:
				if !anyBelow(keymap.DirKey(prefix, p)) {
					t.Fatalf("K1: dir %q with no key below", p)
				}
			}
		}
		step := int(pageSize%8) + 1
		for d, k := range tree {
			if k != keymap.Dir {
				continue
			}
			items := s3List(keys, keymap.DirKey(prefix, d))
			var l keymap.Listing
			for i := 0; i < len(items); i += step {
				for _, it := range items[i:min(i+step, len(items))] {
					if it.cp {
						l.AddCommonPrefix(it.rel)
					} else {
						l.AddObject(it.rel)
					}
				}
			}
			got, want := l.Entries(), keymap.Children(tree, d)
			if (len(got) != 0 || len(want) != 0) && !reflect.DeepEqual(got, want) {
				t.Fatalf("dir %q: Listing %q, Children %q", d, got, want)
			}
			for i, e := range got {
				if i > 0 && got[i-1].Name >= e.Name {
					t.Fatalf("K6: dir %q: %q then %q", d, got[i-1].Name, e.Name)
				}
				p := keymap.Join(d, e.Name)
				kind, found := keymap.ResolveLookup(set[keymap.FileKey(prefix, p)], anyBelow(keymap.DirKey(prefix, p)))
				if !found || kind != e.Kind {
					t.Fatalf("K4: lookup %q = (%v, %v), listed as %v", p, kind, found, e.Kind)
				}
			}
		}
	})
}

func distinctSorted(data []byte) []string {
	var keys []string
	for _, k := range bytes.Split(data, []byte("\n")) {
		keys = append(keys, string(k))
	}
	sort.Strings(keys)
	out := keys[:0]
	for i, k := range keys {
		if i == 0 || k != keys[i-1] {
			out = append(out, k)
		}
	}
	return out
}

type s3Item struct {
	cp  bool
	rel string
}

// s3List is ListObjectsV2(Prefix=p, Delimiter="/") over distinct sorted keys, all pages
// concatenated, relative to p, in S3 order: each common prefix once, at its first key.
func s3List(sortedKeys []string, p string) []s3Item {
	var out []s3Item
	last := ""
	for _, k := range sortedKeys {
		if !strings.HasPrefix(k, p) {
			continue
		}
		rest := k[len(p):]
		if j := strings.IndexByte(rest, '/'); j >= 0 {
			if cp := rest[:j+1]; cp != last {
				out = append(out, s3Item{cp: true, rel: cp})
				last = cp
			}
			continue
		}
		out = append(out, s3Item{rel: rest})
	}
	return out
}
