package keymap_test

import (
	"reflect"
	"sort"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/mount-s3/mount-s3/spec/internal/rapidsetup"

	. "github.com/mount-s3/mount-s3/spec/keymap"
)

// minChecks is the least number of cases every property below is checked with.
const minChecks = 1000

// TestMain runs every property with at least minChecks cases (rapidsetup).
func TestMain(m *testing.M) { rapidsetup.Main(m, minChecks) }

// The adversarial alphabet: every byte the rules treat specially, so that markers, shadowing
// (K4), hidden keys (K3: ".", "..", "//", NUL, long components), '\' (K1), invalid UTF-8 (K5)
// and listing-order traps ("-" < "." < "/") come up in most cases.
var alphabet = []string{"a", "b", "-", "/", ".", "\\", "\x00", "\xff"}

var (
	long255 = strings.Repeat("a", MaxNameLen)
	long256 = strings.Repeat("a", MaxNameLen+1)
)

var tokenGen = rapid.Custom(func(t *rapid.T) string {
	if rapid.IntRange(0, 59).Draw(t, "longComponent") == 0 {
		return rapid.SampledFrom([]string{long255, long256}).Draw(t, "long")
	}
	return rapid.SampledFrom(alphabet).Draw(t, "tok")
})

// componentGen draws a whole component for structured keys: mostly a few short names so that
// the same names recur at several depths (markers, shadowing), and sometimes a hidden one.
var componentGen = rapid.Custom(func(t *rapid.T) string {
	if rapid.IntRange(0, 29).Draw(t, "longComponent") == 0 {
		return rapid.SampledFrom([]string{long255, long256}).Draw(t, "long")
	}
	return rapid.SampledFrom([]string{"a", "a", "b", "a-", "-", ".", "..", "", `\`, "a\x00", "\xff"}).Draw(t, "comp")
})

var prefixGen = rapid.SampledFrom([]string{"", "p/", "a/"})

// keyGen draws a key: either raw bytes of the alphabet or components joined by '/' (maybe
// with a trailing '/', a marker); most are inside the prefix, some are anywhere (K8).
func keyGen(prefix string) *rapid.Generator[string] {
	return rapid.Custom(func(t *rapid.T) string {
		var k string
		if rapid.Bool().Draw(t, "structured") {
			k = strings.Join(rapid.SliceOfN(componentGen, 1, 4).Draw(t, "components"), Delimiter)
			if rapid.IntRange(0, 3).Draw(t, "marker") == 0 {
				k += Delimiter
			}
		} else {
			k = strings.Join(rapid.SliceOfN(tokenGen, 0, 8).Draw(t, "tokens"), "")
		}
		if rapid.IntRange(0, 3).Draw(t, "outside") != 0 {
			k = prefix + k
		}
		return k
	})
}

// bucket is a drawn mount: a prefix and a set of distinct keys (S3 keys are unique).
type bucket struct {
	prefix string
	keys   []string // sorted in S3 (byte) order, distinct
	set    map[string]bool
	tree   map[string]Kind
}

func drawBucket(t *rapid.T) bucket {
	prefix := prefixGen.Draw(t, "prefix")
	raw := rapid.SliceOfN(keyGen(prefix), 0, 12).Draw(t, "keys")
	b := bucket{prefix: prefix, set: map[string]bool{}}
	for _, k := range raw {
		if !b.set[k] {
			b.set[k] = true
			b.keys = append(b.keys, k)
		}
	}
	sort.Strings(b.keys)
	// Tree must not depend on the order the keys come in: feed it the drawn order.
	var drawnOrder []string
	seen := map[string]bool{}
	for _, k := range raw {
		if !seen[k] {
			seen[k] = true
			drawnOrder = append(drawnOrder, k)
		}
	}
	b.tree = Tree(prefix, drawnOrder)
	if sorted := Tree(prefix, b.keys); !reflect.DeepEqual(sorted, b.tree) {
		t.Fatalf("Tree depends on key order: %v vs %v", b.tree, sorted)
	}
	return b
}

func (b bucket) anyKeyWithPrefix(p string) bool {
	i := sort.SearchStrings(b.keys, p)
	return i < len(b.keys) && strings.HasPrefix(b.keys[i], p)
}

func (b bucket) dirs() []string {
	var ds []string
	for p, k := range b.tree {
		if k == Dir {
			ds = append(ds, p)
		}
	}
	sort.Strings(ds)
	return ds
}

// simulateS3List is a ListObjectsV2 of keys with Prefix p and Delimiter "/", all pages
// concatenated, relative to p: the result in S3's order (by full key), each common prefix once
// at the position of its first key, the marker p itself included as the object "".
func simulateS3List(keys []string, p string) []item {
	sorted := append([]string(nil), keys...)
	sort.Strings(sorted)
	var out []item
	lastCP := ""
	for i, k := range sorted {
		if i > 0 && k == sorted[i-1] {
			continue
		}
		if !strings.HasPrefix(k, p) {
			continue
		}
		rest := k[len(p):]
		if j := strings.Index(rest, Delimiter); j >= 0 {
			cp := rest[:j+1]
			if cp != lastCP {
				out = append(out, item{cp: true, rel: cp})
				lastCP = cp
			}
			continue
		}
		out = append(out, item{rel: rest})
	}
	return out
}

func feed(l *Listing, it item) {
	if it.cp {
		l.AddCommonPrefix(it.rel)
	} else {
		l.AddObject(it.rel)
	}
}

// (a) Every path in the tree maps back to the keys (K1, K2, K7).
func TestPropTreeMapsBack(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		b := drawBucket(t)
		if b.tree[""] != Dir {
			t.Fatalf("[K8] root is %v", b.tree[""])
		}
		for p, k := range b.tree {
			switch k {
			case File:
				key := FileKey(b.prefix, p)
				if !b.set[key] {
					t.Fatalf("[K7] file %q: key %q not in the bucket", p, key)
				}
				gp, dir, err := PathOfKey(b.prefix, key)
				if err != nil || dir || gp != p {
					t.Fatalf("[K7] file %q: PathOfKey(%q) = (%q, %v, %v)", p, key, gp, dir, err)
				}
			case Dir:
				if p == "" {
					continue
				}
				if !ValidPath(p) {
					t.Fatalf("[K3] dir %q is not a valid path", p)
				}
				if !b.anyKeyWithPrefix(DirKey(b.prefix, p)) {
					t.Fatalf("[K1] dir %q: no key starts with %q", p, DirKey(b.prefix, p))
				}
				gp, dir, err := PathOfKey(b.prefix, DirKey(b.prefix, p))
				if err != nil || !dir || gp != p {
					t.Fatalf("[K7] dir %q: PathOfKey(DirKey) = (%q, %v, %v)", p, gp, dir, err)
				}
			default:
				t.Fatalf("path %q has kind %v", p, k)
			}
		}
	})
}

// (a') Conversely every visible key is shown: an object as its file or, shadowed, as a
// directory (K4); a marker as its directory (K2); every proper prefix of it as a directory (K1).
func TestPropVisibleKeysShown(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		b := drawBucket(t)
		for _, key := range b.keys {
			p, dir, err := PathOfKey(b.prefix, key)
			if err != nil {
				continue
			}
			k, ok := b.tree[p]
			switch {
			case !ok:
				t.Fatalf("[K1] visible key %q (path %q) not in the tree", key, p)
			case dir && k != Dir:
				t.Fatalf("[K2] marker %q shown as %v", key, k)
			case !dir && k == Dir && !b.anyKeyWithPrefix(DirKey(b.prefix, p)):
				t.Fatalf("[K4] object %q shown as a dir with nothing below", key)
			}
			for d := p; d != ""; {
				d, _ = Split(d)
				if b.tree[d] != Dir {
					t.Fatalf("[K1] key %q: ancestor %q is %v", key, d, b.tree[d])
				}
			}
		}
	})
}

// (b) No hidden key is ever shown, no path has an invalid component (K3), and nothing
// outside the prefix contributes (K8).
func TestPropNoHiddenKeyShown(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		b := drawBucket(t)
		for p, k := range b.tree {
			if !ValidPath(p) {
				t.Fatalf("[K3] path %q has an invalid component", p)
			}
			if k == File && !Visible(b.prefix, FileKey(b.prefix, p)) {
				t.Fatalf("[K3] file %q shown for hidden key %q", p, FileKey(b.prefix, p))
			}
		}
		var inside []string
		for _, k := range b.keys {
			if strings.HasPrefix(k, b.prefix) {
				inside = append(inside, k)
			}
		}
		if got := Tree(b.prefix, inside); !reflect.DeepEqual(got, b.tree) {
			t.Fatalf("[K8] keys outside the prefix changed the tree: %v vs %v", b.tree, got)
		}
	})
}

// (c) Children lists are strictly increasing in byte order: sorted, each name once (K6).
func TestPropChildrenSorted(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		b := drawBucket(t)
		n := 0
		for _, d := range b.dirs() {
			es := Children(b.tree, d)
			for i, e := range es {
				n++
				if i > 0 && !(es[i-1].Name < e.Name) {
					t.Fatalf("[K6] dir %q: %q then %q", d, es[i-1].Name, e.Name)
				}
				if !ValidName(e.Name) {
					t.Fatalf("[K3] dir %q lists invalid name %q", d, e.Name)
				}
				if b.tree[Join(d, e.Name)] != e.Kind {
					t.Fatalf("dir %q: entry %q kind %v, tree says %v", d, e.Name, e.Kind, b.tree[Join(d, e.Name)])
				}
			}
		}
		if n != len(b.tree)-1 {
			t.Fatalf("[K1] children of all dirs have %d entries, tree has %d non-root paths", n, len(b.tree)-1)
		}
	})
}

// (d) Shadowing is consistent (K4): a file path has no key below it; the parent of every
// path is a directory.
func TestPropShadowing(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		b := drawBucket(t)
		for p, k := range b.tree {
			if p == "" {
				continue
			}
			if k == File && b.anyKeyWithPrefix(FileKey(b.prefix, p)+Delimiter) {
				t.Fatalf("[K4] %q is a file but keys start with %q", p, FileKey(b.prefix, p)+Delimiter)
			}
			if d, _ := Split(p); b.tree[d] != Dir {
				t.Fatalf("[K1] parent %q of %q is %v", d, p, b.tree[d])
			}
		}
	})
}

// (e) A Listing fed with the simulated delimited listing of each directory, in S3 order and
// split across random page boundaries (and, separately, in any order), gives exactly
// Children (K1, K2, K3, K4, K6).
func TestPropListingMatchesTree(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		b := drawBucket(t)
		for _, d := range b.dirs() {
			items := simulateS3List(b.keys, DirKey(b.prefix, d))
			want := Children(b.tree, d)

			var l Listing
			for rest := items; len(rest) > 0; {
				n := rapid.IntRange(1, len(rest)).Draw(t, "pageSize")
				for _, it := range rest[:n] {
					feed(&l, it)
				}
				rest = rest[n:]
			}
			if got := l.Entries(); !entriesEqual(got, want) {
				t.Fatalf("[K6] dir %q: items %+v: Listing %s, Children %s", d, items, fmtEntries(got), fmtEntries(want))
			}

			var shuffled Listing
			for _, it := range rapid.Permutation(items).Draw(t, "order") {
				feed(&shuffled, it)
			}
			if got := shuffled.Entries(); !entriesEqual(got, want) {
				t.Fatalf("[K6] dir %q: shuffled Listing %s, Children %s", d, fmtEntries(got), fmtEntries(want))
			}
		}
	})
}

// (c') Handing entries out page by page (TakeSettled after each page, the rest at the end)
// gives the whole listing's entries, in the same order, each once (K6, K4): no later page
// puts a name before one already handed out or changes its kind.
func TestPropSettledEntriesArePrefix(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		b := drawBucket(t)
		for _, d := range b.dirs() {
			items := simulateS3List(b.keys, DirKey(b.prefix, d))
			want := Children(b.tree, d)
			var l Listing
			var got []Entry
			for rest := items; len(rest) > 0; {
				n := rapid.IntRange(1, len(rest)).Draw(t, "pageSize")
				upTo := ""
				for _, it := range rest[:n] {
					feed(&l, it)
					upTo = max(upTo, it.rel)
				}
				rest = rest[n:]
				taken, stop, left := l.TakeSettled(upTo)
				if rem := l.Entries(); left != (len(rem) > 0) || left && rem[0].Name != stop {
					t.Fatalf("TakeSettled left %s, said stop %q (left %v)", fmtEntries(rem), stop, left)
				}
				got = append(got, taken...)
			}
			got = append(got, l.Entries()...)
			if !entriesEqual(got, want) {
				t.Fatalf("[K6] dir %q: items %+v: handed out %s, Children %s", d, items, fmtEntries(got), fmtEntries(want))
			}
		}
	})
}

func entriesEqual(a, b []Entry) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return reflect.DeepEqual(a, b)
}

// (f) ResolveLookup on the facts a lookup gathers agrees with Tree for every listed name and
// for drawn names that may not exist (K1, K4).
func TestPropLookupAgreesWithTree(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		b := drawBucket(t)
		lookup := func(d, n string) (Kind, bool) {
			p := Join(d, n)
			return ResolveLookup(b.set[FileKey(b.prefix, p)], b.anyKeyWithPrefix(DirKey(b.prefix, p)))
		}
		for _, d := range b.dirs() {
			var l Listing
			for _, it := range simulateS3List(b.keys, DirKey(b.prefix, d)) {
				feed(&l, it)
			}
			for _, e := range l.Entries() {
				k, found := lookup(d, e.Name)
				if !found || k != e.Kind || b.tree[Join(d, e.Name)] != k {
					t.Fatalf("[K4] %q in %q: lookup (%v, %v), listing %v, tree %v", e.Name, d, k, found, e.Kind, b.tree[Join(d, e.Name)])
				}
			}
			n := strings.Join(rapid.SliceOfN(tokenGen, 1, 3).Draw(t, "name"), "")
			if !ValidName(n) {
				continue
			}
			k, found := lookup(d, n)
			tk, inTree := b.tree[Join(d, n)]
			if found != inTree || (found && k != tk) {
				t.Fatalf("[K1] lookup %q in %q: (%v, %v), tree (%v, %v)", n, d, k, found, tk, inTree)
			}
		}
	})
}

// K7 on single keys: a key that PathOfKey accepts maps back to itself; a key it rejects is
// not Visible; any valid path maps to keys that map back to it.
func TestPropPathKeyRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		prefix := prefixGen.Draw(t, "prefix")
		key := keyGen(prefix).Draw(t, "key")
		p, dir, err := PathOfKey(prefix, key)
		if err != nil {
			if Visible(prefix, key) {
				t.Fatalf("[K3] PathOfKey(%q, %q) failed (%v) but the key is Visible", prefix, key, err)
			}
			if strings.HasPrefix(key, prefix) != (err == ErrHiddenKey) {
				t.Fatalf("[K8] PathOfKey(%q, %q): wrong error %v", prefix, key, err)
			}
		} else {
			back := FileKey(prefix, p)
			if dir {
				back = DirKey(prefix, p)
			} else if p == "" {
				t.Fatalf("[K7] key %q maps to the root as a file", key)
			}
			if back != key || !ValidPath(p) {
				t.Fatalf("[K7] %q -> (%q, dir=%v) -> %q", key, p, dir, back)
			}
		}
		path := strings.Join(rapid.SliceOfN(tokenGen, 1, 6).Draw(t, "path"), "")
		if !ValidPath(path) {
			return
		}
		if gp, d, err := PathOfKey(prefix, FileKey(prefix, path)); err != nil || d || gp != path {
			t.Fatalf("[K7] path %q -> file key -> (%q, %v, %v)", path, gp, d, err)
		}
		if gp, d, err := PathOfKey(prefix, DirKey(prefix, path)); err != nil || !d || gp != path {
			t.Fatalf("[K7] path %q -> dir key -> (%q, %v, %v)", path, gp, d, err)
		}
	})
}
