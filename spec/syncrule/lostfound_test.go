package syncrule_test

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"pgregory.net/rapid"

	"github.com/mount-s3/mount-s3/spec/keymap"
	. "github.com/mount-s3/mount-s3/spec/syncrule"
)

func TestLostFoundDir(t *testing.T) {
	if got := LostFoundDir("3f2a"); got != ".mount-s3-lost+found-3f2a" {
		t.Errorf("[C4] LostFoundDir = %q", got)
	}
}

func TestLostFoundName(t *testing.T) {
	long := strings.Repeat("n", 300)
	euro := "a" + strings.Repeat("€", 100) // 3 bytes each: a cut at 234 bytes falls inside one
	tests := []struct {
		rule string
		id   uint64
		base string
		want string
	}{
		{"C4", 1, "report.csv", "00000000000000000001-report.csv"},
		{"C4", 42, "a", "00000000000000000042-a"},
		{"C4", 18446744073709551615, "a", "18446744073709551615-a"},
		{"C4", 7, "", "00000000000000000007-"},
		{"K5", 7, "caf\xe9", "00000000000000000007-caf\xe9"},
		{"K3", 7, long, "00000000000000000007-" + long[:234]},
		{"K3 K5", 7, euro, "00000000000000000007-a" + strings.Repeat("€", 77)},
		{"K3 K5", 7, "\xff" + long, "00000000000000000007-" + ("\xff" + long)[:234]},
	}
	for _, tt := range tests {
		got := LostFoundName(tt.id, tt.base)
		if got != tt.want {
			t.Errorf("[%s] LostFoundName(%d, %.20q...) = %q, want %q", tt.rule, tt.id, tt.base, got, tt.want)
		}
		if !keymap.ValidName(got) {
			t.Errorf("[%s] LostFoundName(%d, %.20q...) = %q is not a valid name", tt.rule, tt.id, tt.base, got)
		}
	}
	for _, bad := range []string{"", "1-a", "0000000000000000000x-a", "00000000000000000001a", "99999999999999999999-a"} {
		if _, _, ok := ParseLostFoundName(bad); ok {
			t.Errorf("ParseLostFoundName(%q) accepted", bad)
		}
	}
}

// Lost+found names are valid names (K3), sort by id (C4: ids increase, so the newest copy of a
// file sorts last) and parse back to their id.
func TestPropLostFoundName(t *testing.T) {
	base := rapid.Custom(func(t *rapid.T) string {
		return rapid.StringOfN(rapid.SampledFrom([]rune{'a', '-', '.', 'é', '€', '😀', '\\'}), 0, 300, -1).Draw(t, "base")
	})
	rapid.Check(t, func(t *rapid.T) {
		a, b := rapid.Uint64().Draw(t, "a"), rapid.Uint64().Draw(t, "b")
		ba, bb := base.Draw(t, "ba"), base.Draw(t, "bb")
		na, nb := LostFoundName(a, ba), LostFoundName(b, bb)
		if !keymap.ValidName(na) || len(na) > keymap.MaxNameLen {
			t.Fatalf("[K3] %q is not a valid name", na)
		}
		if a < b && na >= nb {
			t.Fatalf("[C4] ids %d < %d but names %q >= %q", a, b, na, nb)
		}
		id, got, ok := ParseLostFoundName(na)
		if !ok || id != a || !strings.HasPrefix(ba, got) || len(ba) <= 234 && got != ba {
			t.Fatalf("[C4] ParseLostFoundName(%q) = %d, %q, %v", na, id, got, ok)
		}
		if utf8.ValidString(ba) && !utf8.ValidString(got) {
			t.Fatalf("[K5] cut inside a character: %q", got)
		}
	})
}

func TestInLostFound(t *testing.T) {
	lf := LostFoundDir("abc")
	for _, c := range []struct {
		fsid, path string
		want       bool
	}{
		{"abc", lf, true},
		{"abc", lf + "/00000000000000000001-x", true},
		{"abc", lf + "x", false},
		{"abc", LostFoundDir("other") + "/f", false},
		{"abc", "d/" + lf, false},
		{"abc", "", false},
		{"", LostFoundDir("other") + "/f", true},
		{"", lf, true},
		{"", "d/" + lf, false},
		{"", ".mount-s3-lost", false},
	} {
		if got := InLostFound(c.fsid, c.path); got != c.want {
			t.Errorf("InLostFound(%q, %q) = %v, want %v", c.fsid, c.path, got, c.want)
		}
	}
}

func TestExpireSweepEvery(t *testing.T) {
	for _, c := range []struct{ after, want time.Duration }{
		{-1, 0}, {0, time.Second}, {5 * time.Second, time.Second}, {100 * time.Second, 10 * time.Second},
		{30 * 24 * time.Hour, time.Hour},
	} {
		if got := ExpireSweepEvery(Params{ExpireAfter: c.after}); got != c.want {
			t.Errorf("ExpireSweepEvery(%v) = %v, want %v", c.after, got, c.want)
		}
	}
}
