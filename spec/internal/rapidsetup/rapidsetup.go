// Package rapidsetup owns how the property tests of spec/ run rapid: at least a given number of
// cases per property unless -rapid.checks says otherwise, and no failure files written into
// testdata/ unless -rapid.nofailfile says otherwise (a failure still prints its seed and
// minimal case; rerun with -rapid.seed to reproduce).
package rapidsetup

import (
	"flag"
	"os"
	"strconv"
	"testing"
)

// Main is a package's TestMain: it raises rapid's default of 100 checks to minChecks (5x that
// under -short, which rapid divides by 5) and runs the tests.
func Main(m *testing.M, minChecks int) {
	flag.Parse()
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if f := flag.Lookup("rapid.checks"); f != nil && !set[f.Name] {
		n, _ := strconv.Atoi(f.Value.String())
		want := minChecks
		if testing.Short() {
			want *= 5
		}
		if n < want {
			_ = f.Value.Set(strconv.Itoa(want))
		}
	}
	if f := flag.Lookup("rapid.nofailfile"); f != nil && !set[f.Name] {
		_ = f.Value.Set("true")
	}
	os.Exit(m.Run())
}
