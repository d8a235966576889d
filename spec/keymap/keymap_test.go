package keymap_test

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	. "github.com/mount-s3/mount-s3/spec/keymap"
)

// Table tests for the key -> path specification. Every row cites the rule of
// docs/SEMANTICS.md it checks in its `rule` field, so a reader can go from a rule to its
// examples. Rows named "regression: ..." pin a bug that a property test or fuzzer found.

var (
	name255 = strings.Repeat("n", MaxNameLen)     // longest valid component (K3)
	name256 = strings.Repeat("n", MaxNameLen+1)   // one byte too long (K3)
	utf255  = strings.Repeat("é", 127) + "x"      // 255 bytes of multi-byte UTF-8
	bad8    = "caf\xe9"                           // Latin-1, invalid UTF-8 (K5)
	bad8b   = "\xff\xfe"                          // invalid UTF-8 (K5)
	_       = func() int { return len(utf255) }() // 255, checked in TestValidName
)

func TestValidName(t *testing.T) {
	if len(utf255) != 255 {
		t.Fatalf("utf255 is %d bytes", len(utf255))
	}
	tests := []struct {
		rule string
		name string
		want bool
	}{
		{"K1", "a", true},
		{"K1", "file.txt", true},
		{"K3", "", false},
		{"K3", ".", false},
		{"K3", "..", false},
		{"K3", "...", true},
		{"K3", ".a", true},
		{"K3", "a.", true},
		{"K3", "..a", true},
		{"K1", "a/b", false},
		{"K1", "/", false},
		{"K1", "a/", false},
		{"K3", "\x00", false},
		{"K3", "a\x00b", false},
		{"K3", name255, true},
		{"K3", name256, false},
		{"K3", utf255, true},
		{"K3", utf255 + "x", false},
		{"K1", `\`, true}, // '\' is an ordinary byte
		{"K1", `a\b`, true},
		{"K1", `..\`, true},
		{"K1", `\..`, true},
		{"K5", bad8, true},
		{"K5", bad8b, true},
		{"K5", "\xff", true},
		{"K5", " ", true},
		{"K5", "\n", true},
		{"K5", "-", true},
	}
	for _, tt := range tests {
		if got := ValidName(tt.name); got != tt.want {
			t.Errorf("[%s] ValidName(%q) = %v, want %v", tt.rule, tt.name, got, tt.want)
		}
	}
}

func TestValidatePrefix(t *testing.T) {
	tests := []struct {
		rule   string
		prefix string
		ok     bool
	}{
		{"K8", "", true},
		{"K8", "p/", true},
		{"K8", "p/q/", true},
		{"K8", `p\/`, true},
		{"K8", bad8 + "/", true},
		{"K8", name255 + "/", true},
		{"K8", name256 + "/", false},
		{"K8", "p", false},
		{"K8", "p/q", false},
		{"K8", "/", false},
		{"K8", "//", false},
		{"K8", "/p/", false},
		{"K8", "p//", false},
		{"K8", "p//q/", false},
		{"K8", "./", false},
		{"K8", "../", false},
		{"K8", "p/./", false},
		{"K8", "p/../", false},
		{"K8", "p\x00/", false},
		{"K8", "\x00/", false},
	}
	for _, tt := range tests {
		err := ValidatePrefix(tt.prefix)
		if (err == nil) != tt.ok {
			t.Errorf("[%s] ValidatePrefix(%q) = %v, want ok=%v", tt.rule, tt.prefix, err, tt.ok)
		}
	}
}

func TestValidPathJoinSplit(t *testing.T) {
	paths := []struct {
		rule string
		path string
		want bool
	}{
		{"K7", "", true},
		{"K7", "a", true},
		{"K7", "a/b", true},
		{"K3", "a/", false},
		{"K3", "/a", false},
		{"K3", "a//b", false},
		{"K3", "a/./b", false},
		{"K3", "a/..", false},
		{"K3", "a/" + name256, false},
		{"K3", "a/" + name255, true},
		{"K3", "a\x00", false},
		{"K5", bad8 + "/" + `\`, true},
	}
	for _, tt := range paths {
		if got := ValidPath(tt.path); got != tt.want {
			t.Errorf("[%s] ValidPath(%q) = %v, want %v", tt.rule, tt.path, got, tt.want)
		}
	}
	splits := []struct {
		rule, path, dir, name string
	}{
		{"K1", "", "", ""},
		{"K1", "a", "", "a"},
		{"K1", "a/b", "a", "b"},
		{"K1", "a/b/c", "a/b", "c"},
		{"K1", `a\b`, "", `a\b`},
	}
	for _, tt := range splits {
		d, n := Split(tt.path)
		if d != tt.dir || n != tt.name {
			t.Errorf("[%s] Split(%q) = (%q, %q), want (%q, %q)", tt.rule, tt.path, d, n, tt.dir, tt.name)
		}
		if tt.path != "" {
			if j := Join(d, n); j != tt.path {
				t.Errorf("[%s] Join(Split(%q)) = %q", tt.rule, tt.path, j)
			}
		}
	}
}

func TestFileKeyDirKey(t *testing.T) {
	tests := []struct {
		rule    string
		prefix  string
		path    string
		fileKey string // "" when path is the root (FileKey requires a non-root path)
		dirKey  string
	}{
		{"K8", "", "", "", ""},
		{"K8", "p/", "", "", "p/"},
		{"K7", "", "a", "a", "a/"},
		{"K7", "", "a/b", "a/b", "a/b/"},
		{"K7", "p/", "a", "p/a", "p/a/"},
		{"K7", "p/q/", "a/b", "p/q/a/b", "p/q/a/b/"},
		{"K5", "", bad8, bad8, bad8 + "/"},
		{"K1", "", `a\b`, `a\b`, `a\b/`},
	}
	for _, tt := range tests {
		if tt.path != "" {
			if got := FileKey(tt.prefix, tt.path); got != tt.fileKey {
				t.Errorf("[%s] FileKey(%q, %q) = %q, want %q", tt.rule, tt.prefix, tt.path, got, tt.fileKey)
			}
			if p, dir, err := PathOfKey(tt.prefix, tt.fileKey); err != nil || dir || p != tt.path {
				t.Errorf("[%s] PathOfKey(FileKey) = (%q, %v, %v), want (%q, false, nil)", tt.rule, p, dir, err, tt.path)
			}
		}
		if got := DirKey(tt.prefix, tt.path); got != tt.dirKey {
			t.Errorf("[%s] DirKey(%q, %q) = %q, want %q", tt.rule, tt.prefix, tt.path, got, tt.dirKey)
		}
		if p, dir, err := PathOfKey(tt.prefix, tt.dirKey); err != nil || !dir || p != tt.path {
			t.Errorf("[%s] PathOfKey(DirKey) = (%q, %v, %v), want (%q, true, nil)", tt.rule, p, dir, err, tt.path)
		}
	}
}

func TestPathOfKeyAndVisible(t *testing.T) {
	tests := []struct {
		rule   string
		prefix string
		key    string
		path   string
		dir    bool
		err    error
	}{
		{"K1", "", "a", "a", false, nil},
		{"K1", "", "a/b/c", "a/b/c", false, nil},
		{"K2", "", "a/", "a", true, nil},
		{"K2", "", "a/b/", "a/b", true, nil},
		{"K8", "", "", "", true, nil},
		{"K8", "p/", "p/", "", true, nil},
		{"K8", "p/", "p/a", "a", false, nil},
		{"K8", "p/", "p/a/", "a", true, nil},
		{"K8", "p/", "p", "", false, ErrOutsidePrefix},
		{"K8", "p/", "q/a", "", false, ErrOutsidePrefix},
		{"K8", "p/", "pa", "", false, ErrOutsidePrefix},
		{"K8", "p/", "", "", false, ErrOutsidePrefix},
		{"K3", "", "a//b", "", false, ErrHiddenKey},
		{"K3", "", "a//", "", false, ErrHiddenKey},
		{"K3", "", "//", "", false, ErrHiddenKey},
		{"K3", "", "/a", "", false, ErrHiddenKey},
		{"K3", "", "a/./b", "", false, ErrHiddenKey},
		{"K3", "", "a/../b", "", false, ErrHiddenKey},
		{"K3", "", "a/.", "", false, ErrHiddenKey},
		{"K3", "", "a/..", "", false, ErrHiddenKey},
		{"K3", "", "a/./", "", false, ErrHiddenKey},
		{"K3", "", "./a", "", false, ErrHiddenKey},
		{"K3", "", "../a", "", false, ErrHiddenKey},
		{"K3", "", ".", "", false, ErrHiddenKey},
		{"K3", "", "..", "", false, ErrHiddenKey},
		{"K3", "", "./", "", false, ErrHiddenKey},
		{"K3", "", "../", "", false, ErrHiddenKey},
		{"K3", "", "a\x00", "", false, ErrHiddenKey},
		{"K3", "", "\x00/", "", false, ErrHiddenKey},
		{"K3", "", "a/" + name256, "", false, ErrHiddenKey},
		{"K3", "", name256 + "/", "", false, ErrHiddenKey},
		{"K3", "", "a/" + name255, "a/" + name255, false, nil},
		{"K3", "p/", "p/./", "", false, ErrHiddenKey},
		// regression: PathOfKey mapped the key PREFIX+"/" (an empty component) to the root
		// directory, so it was Visible and did not round-trip through DirKey (found by
		// FuzzPathKeyRoundTrip and the round-trip property).
		{"K3", "", "/", "", false, ErrHiddenKey},
		{"K3", "p/", "p//", "", false, ErrHiddenKey},
		{"K1", "", `a\b`, `a\b`, false, nil},
		{"K1", "", `a\..\b`, `a\..\b`, false, nil},
		{"K1", "", `..\`, `..\`, false, nil},
		{"K1", "", `\/`, `\`, true, nil},
		{"K5", "", bad8 + "/" + bad8b, bad8 + "/" + bad8b, false, nil},
		{"K5", "", "...", "...", false, nil},
	}
	for _, tt := range tests {
		p, dir, err := PathOfKey(tt.prefix, tt.key)
		if !errors.Is(err, tt.err) || (err == nil && (p != tt.path || dir != tt.dir)) {
			t.Errorf("[%s] PathOfKey(%q, %q) = (%q, %v, %v), want (%q, %v, %v)",
				tt.rule, tt.prefix, tt.key, p, dir, err, tt.path, tt.dir, tt.err)
		}
		if v := Visible(tt.prefix, tt.key); v != (tt.err == nil) {
			t.Errorf("[%s] Visible(%q, %q) = %v, want %v", tt.rule, tt.prefix, tt.key, v, tt.err == nil)
		}
		if err == nil { // K7: the path maps back to exactly this key
			back := DirKey(tt.prefix, p)
			if !dir {
				back = FileKey(tt.prefix, p)
			}
			if back != tt.key {
				t.Errorf("[K7] key %q -> path %q (dir=%v) -> key %q", tt.key, p, dir, back)
			}
		}
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{File: "file", Dir: "dir", 0: "none", 7: "none"} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", k, got, want)
		}
	}
}

func TestResolveLookup(t *testing.T) {
	tests := []struct {
		rule   string
		object bool
		below  bool
		kind   Kind
		found  bool
		descr  string
	}{
		{"K1", true, false, File, true, "only the object a"},
		{"K1", false, true, Dir, true, "only keys under a/"},
		{"K2", false, true, Dir, true, "only the marker a/"},
		{"K4", true, true, Dir, true, "a and a/x: the directory shadows the file"},
		{"K4", false, false, 0, false, "nothing: not found (the file reappears only with the object)"},
	}
	for _, tt := range tests {
		k, f := ResolveLookup(tt.object, tt.below)
		if k != tt.kind || f != tt.found {
			t.Errorf("[%s] %s: ResolveLookup(%v, %v) = (%v, %v), want (%v, %v)",
				tt.rule, tt.descr, tt.object, tt.below, k, f, tt.kind, tt.found)
		}
	}
}

// item is one entry of a simulated ListObjectsV2 page, relative to the directory's key prefix.
type item struct {
	cp  bool // a common prefix (ends in '/'); else an object
	rel string
}

func obj(rel string) item { return item{rel: rel} }
func cp(rel string) item  { return item{cp: true, rel: rel} }

func TestListing(t *testing.T) {
	tests := []struct {
		rule  string
		descr string
		pages [][]item // in S3 order: by full key
		want  []Entry
	}{
		{"K6", "empty directory", nil, []Entry{}},
		{"K6", "'-a-' before '-a/' in S3 order, across two pages: names '-a' then '-a-'",
			[][]item{{obj("-a-")}, {cp("-a/")}},
			[]Entry{{"-a", Dir}, {"-a-", File}}},
		{"K6", "same, both on one page",
			[][]item{{obj("-a-"), cp("-a/")}},
			[]Entry{{"-a", Dir}, {"-a-", File}}},
		{"K6", "'a.b' (0x2e) sorts before the prefix 'a/' (0x2f) in S3 but after 'a' as a name",
			[][]item{{obj("a.b")}, {cp("a/")}},
			[]Entry{{"a", Dir}, {"a.b", File}}},
		{"K4", "name both object and common prefix: listed once, as a directory",
			[][]item{{obj("a")}, {cp("a/")}},
			[]Entry{{"a", Dir}}},
		{"K4", "common prefix before the object in feed order still wins",
			[][]item{{cp("a/"), obj("a")}},
			[]Entry{{"a", Dir}}},
		{"K6", "duplicates across pages are listed once",
			[][]item{{obj("x"), cp("d/")}, {obj("x"), cp("d/")}},
			[]Entry{{"d", Dir}, {"x", File}}},
		{"K2", "the directory's own marker (relative key \"\") is skipped",
			[][]item{{obj(""), obj("b")}},
			[]Entry{{"b", File}}},
		{"K3", "common prefixes './', '../' and '/' are skipped",
			[][]item{{cp("../"), cp("./"), cp("/"), cp("ok/")}},
			[]Entry{{"ok", Dir}}},
		{"K3", "objects '.', '..' and names with NUL are skipped",
			[][]item{{obj("."), obj(".."), obj("a\x00"), obj("\x00"), obj("z")}},
			[]Entry{{"z", File}}},
		{"K3", "255-byte names are shown, 256-byte names are not",
			[][]item{{obj(name255), obj(name256), cp(name255 + "x/"), cp(name255 + "/")}},
			[]Entry{{name255, Dir}}},
		{"K3", "255-byte object kept next to a hidden 256-byte prefix",
			[][]item{{obj(name255)}, {cp(name256 + "/")}},
			[]Entry{{name255, File}}},
		{"K1", "backslash is an ordinary byte",
			[][]item{{obj(`\`), obj(`a\b`), cp(`\/`)}},
			[]Entry{{`\`, Dir}, {`a\b`, File}}},
		{"K5", "invalid UTF-8 shown as stored, byte order",
			[][]item{{obj("a"), obj(bad8), obj(bad8b), obj("\x7f")}},
			[]Entry{{"a", File}, {bad8, File}, {"\x7f", File}, {bad8b, File}}},
		{"K6", "byte order, not locale order",
			[][]item{{obj("B"), obj("a"), obj("A"), obj("b"), obj("_")}},
			[]Entry{{"A", File}, {"B", File}, {"_", File}, {"a", File}, {"b", File}}},
	}
	for _, tt := range tests {
		var l Listing
		for _, page := range tt.pages {
			for _, it := range page {
				if it.cp {
					l.AddCommonPrefix(it.rel)
				} else {
					l.AddObject(it.rel)
				}
			}
		}
		got := l.Entries()
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("[%s] %s: Entries() = %s, want %s", tt.rule, tt.descr, fmtEntries(got), fmtEntries(tt.want))
		}
	}
}

func TestListingZeroValue(t *testing.T) {
	var l Listing
	if got := l.Entries(); len(got) != 0 {
		t.Errorf("[K6] zero Listing has entries %v", got)
	}
}

func fmtEntries(es []Entry) string {
	var b strings.Builder
	b.WriteString("[")
	for i, e := range es {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%q:%v", e.Name, e.Kind)
	}
	b.WriteString("]")
	return b.String()
}

type tree = map[string]Kind

func TestTree(t *testing.T) {
	tests := []struct {
		rule   string
		descr  string
		prefix string
		keys   []string
		want   tree
	}{
		{"K8", "no keys: only the root", "", nil, tree{"": Dir}},
		{"K1", "proper prefixes are directories", "", []string{"a/b/c"},
			tree{"": Dir, "a": Dir, "a/b": Dir, "a/b/c": File}},
		{"K2", "a marker shows the directory, not a file", "", []string{"a/"},
			tree{"": Dir, "a": Dir}},
		{"K2", "marker with a nested marker", "", []string{"a/b/"},
			tree{"": Dir, "a": Dir, "a/b": Dir}},
		{"K4", "keys a/a and a/a/ together: a/a is a directory", "", []string{"a/a", "a/a/"},
			tree{"": Dir, "a": Dir, "a/a": Dir}},
		{"K4", "a and a/x: a is a directory", "", []string{"a", "a/x"},
			tree{"": Dir, "a": Dir, "a/x": File}},
		{"K4", "order of keys does not matter", "", []string{"a/x", "a"},
			tree{"": Dir, "a": Dir, "a/x": File}},
		{"K4", "the file a is visible again when no key under a/ is left", "", []string{"a"},
			tree{"": Dir, "a": File}},
		{"K3", "key ending in '/.': its directory is shown, empty", "", []string{"a/."},
			tree{"": Dir, "a": Dir}},
		{"K3", "key ending in '/..'", "", []string{"a/.."},
			tree{"": Dir, "a": Dir}},
		{"K3", "key ending in '/./'", "", []string{"a/./"},
			tree{"": Dir, "a": Dir}},
		{"K3", "a//b: a is shown (empty), the rest is hidden", "", []string{"a//b"},
			tree{"": Dir, "a": Dir}},
		{"K3", "a/../b: a is shown (empty), the rest is hidden", "", []string{"a/../b"},
			tree{"": Dir, "a": Dir}},
		{"K3", "a/./b/c: b is not shown", "", []string{"a/./b/c"},
			tree{"": Dir, "a": Dir}},
		{"K3", "leading ./ and ../ and / are hidden entirely", "", []string{"./a", "../a", "/a", "/"},
			tree{"": Dir}},
		{"K3", "'.' and '..' alone are hidden", "", []string{".", ".."},
			tree{"": Dir}},
		{"K3", "NUL bytes hide the key from the NUL component on", "", []string{"a\x00", "d/x\x00y", "\x00/z"},
			tree{"": Dir, "d": Dir}},
		{"K3", "255-byte components shown, 256-byte hidden", "", []string{name255 + "/" + name255, name256, "d/" + name256 + "/x"},
			tree{"": Dir, name255: Dir, name255 + "/" + name255: File, "d": Dir}},
		{"K1", "backslashes are ordinary bytes", "", []string{`a\b`, `c\`, `\/x`, `..\`},
			tree{"": Dir, `a\b`: File, `c\`: File, `\`: Dir, `\/x`: File, `..\`: File}},
		{"K5", "invalid UTF-8 shown as stored", "", []string{bad8 + "/" + bad8b},
			tree{"": Dir, bad8: Dir, bad8 + "/" + bad8b: File}},
		{"K4", "a valid prefix of a hidden key is a directory and shadows: a and a/./x", "", []string{"a", "a/./x"},
			tree{"": Dir, "a": Dir}}, // documented decision: a proper prefix with valid components is a directory
		{"K8", "keys outside the prefix are ignored", "p/", []string{"p/a", "q/b", "p", "pa/c", "a", "/p/x"},
			tree{"": Dir, "a": File}},
		{"K8", "the prefix's own marker is the root", "p/", []string{"p/"},
			tree{"": Dir}},
		{"K8", "nested prefix", "p/q/", []string{"p/q/a/b", "p/x", "p/q"},
			tree{"": Dir, "a": Dir, "a/b": File}},
		{"K3", "with a prefix: p//a is hidden", "p/", []string{"p//a", "p/./b", "p/../c"},
			tree{"": Dir}},
		{"K8", "the empty key under an empty prefix is the root", "", []string{""},
			tree{"": Dir}},
	}
	for _, tt := range tests {
		got := Tree(tt.prefix, tt.keys)
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("[%s] %s: Tree(%q, %q) =\n  %v\nwant\n  %v", tt.rule, tt.descr, tt.prefix, tt.keys, got, tt.want)
		}
	}
}

func TestChildren(t *testing.T) {
	tests := []struct {
		rule   string
		descr  string
		prefix string
		keys   []string
		dir    string
		want   []Entry
	}{
		{"K6", "root of the empty bucket", "", nil, "", nil},
		{"K4", "a/a and a/a/: one entry, a directory", "", []string{"a/a", "a/a/"}, "a",
			[]Entry{{"a", Dir}}},
		{"K6", "-a- next to -a/: '-a' before '-a-'", "", []string{"-a-", "-a/x"}, "",
			[]Entry{{"-a", Dir}, {"-a-", File}}},
		{"K3", "a/. lists nothing in a", "", []string{"a/.", "a/..", "a//", "a//b"}, "a", nil},
		{"K3", "a/../b lists nothing in a", "", []string{"a/../b"}, "a", nil},
		{"K3", "NUL and 256-byte names are not listed", "", []string{"x\x00", name256, name255, "ok"}, "",
			[]Entry{{name255, File}, {"ok", File}}},
		{"K1", "backslash names in byte order", "", []string{`\`, `a\`, `\\`, "a"}, "",
			[]Entry{{`\`, File}, {`\\`, File}, {"a", File}, {`a\`, File}}},
		{"K5", "invalid UTF-8 names after ASCII", "", []string{bad8b, "z", bad8}, "",
			[]Entry{{bad8, File}, {"z", File}, {bad8b, File}}},
		{"K8", "prefix: keys outside ignored", "p/", []string{"p/b", "p/a/", "q/c", "pz"}, "",
			[]Entry{{"a", Dir}, {"b", File}}},
		{"K1", "a subdirectory's entries", "p/", []string{"p/d/e/f", "p/d/g", "p/d/e"}, "d",
			[]Entry{{"e", Dir}, {"g", File}}},
		{"K1", "a missing directory has no entries", "", []string{"a"}, "b", nil},
	}
	for _, tt := range tests {
		got := Children(Tree(tt.prefix, tt.keys), tt.dir)
		if len(got) == 0 && len(tt.want) == 0 {
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("[%s] %s: Children(%q) = %s, want %s", tt.rule, tt.descr, tt.dir, fmtEntries(got), fmtEntries(tt.want))
		}
	}
}

// TestListingMatchesChildrenExamples feeds adversarial key sets to a simulated S3 listing of
// every directory and checks it agrees with Tree (K1, K4, K6): the example-based counterpart
// of property (e).
func TestListingMatchesChildrenExamples(t *testing.T) {
	sets := []struct {
		rule   string
		prefix string
		keys   []string
	}{
		{"K6", "", []string{"-a-", "-a/", "-a/x"}},
		{"K4", "", []string{"a", "a/", "a/a", "a/a/", "a/a/b"}},
		{"K3", "", []string{"a/.", "a/", "a//b", "a/../b", "/", "./", "../x", "b\x00", `\`, `\/.`}},
		{"K3", "", []string{name255, name256, name255 + "/x", name256 + "/x"}},
		{"K8", "p/", []string{"p/", "p/a", "p//", "q", "p", "pa/b", "p/a/b/"}},
	}
	for _, s := range sets {
		tr := Tree(s.prefix, s.keys)
		for p, k := range tr {
			if k != Dir {
				continue
			}
			var l Listing
			for _, it := range simulateS3List(s.keys, DirKey(s.prefix, p)) {
				if it.cp {
					l.AddCommonPrefix(it.rel)
				} else {
					l.AddObject(it.rel)
				}
			}
			got, want := l.Entries(), Children(tr, p)
			if len(got) != 0 || len(want) != 0 {
				if !reflect.DeepEqual(got, want) {
					t.Errorf("[%s] keys %q dir %q: Listing %s, Children %s", s.rule, s.keys, p, fmtEntries(got), fmtEntries(want))
				}
			}
		}
	}
}

func TestBelow(t *testing.T) {
	for _, c := range []struct {
		p, dir string
		want   bool
	}{
		{"a/b", "a", true}, {"a/b/c", "a", true}, {"a", "a", false}, {"ab", "a", false},
		{"ab/c", "a", false}, {"a", "", true}, {"", "", false}, {"a/b", "a/b", false}, {"b/a", "a", false},
	} {
		if got := Below(c.p, c.dir); got != c.want {
			t.Errorf("Below(%q, %q) = %v, want %v", c.p, c.dir, got, c.want)
		}
	}
}

// K4 over the bucket and a mount's local entries: a directory anywhere wins, then a local
// file, then the bucket's file.
func TestResolveWithLocal(t *testing.T) {
	tests := []struct {
		descr    string
		bucket   Kind
		inBucket bool
		local    Local
		kind     Kind
		found    bool
	}{
		{"nothing", 0, false, Local{}, 0, false},
		{"only the bucket's file", File, true, Local{}, File, true},
		{"a file being written over the bucket's file", File, true, Local{Kind: File, Is: true}, File, true},
		{"a bucket directory shadows a file being written", Dir, true, Local{Kind: File, Is: true}, Dir, true},
		{"a local directory shadows the bucket's file", File, true, Local{Kind: Dir, Is: true}, Dir, true},
		{"a local entry below keeps the name a directory", 0, false, Local{Below: true}, Dir, true},
		{"... over a file being written of that name", 0, false, Local{Kind: File, Is: true, Below: true}, Dir, true},
		{"... and over the bucket's file", File, true, Local{Below: true}, Dir, true},
	}
	for _, tt := range tests {
		k, f := ResolveWithLocal(tt.bucket, tt.inBucket, tt.local)
		if k != tt.kind || f != tt.found {
			t.Errorf("%s: (%v, %v), want (%v, %v)", tt.descr, k, f, tt.kind, tt.found)
		}
	}
}

func TestChildToward(t *testing.T) {
	for _, c := range []struct {
		dir, path, name string
		deeper, ok      bool
	}{
		{"", "a", "a", false, true},
		{"", "a/b/c", "a", true, true},
		{"a", "a/b", "b", false, true},
		{"a", "a/b/c", "b", true, true},
		{"a", "a", "", false, false},
		{"a", "ab/c", "", false, false},
		{"a/b", "a", "", false, false},
	} {
		name, deeper, ok := ChildToward(c.dir, c.path)
		if name != c.name || deeper != c.deeper || ok != c.ok {
			t.Errorf("ChildToward(%q, %q) = %q, %v, %v", c.dir, c.path, name, deeper, ok)
		}
	}
}
