// Package fuzz owns the Go native fuzz targets of the project's pure specifications. It holds
// no production code: its targets, in _test.go files, drive spec/keymap (rules K1-K8 of
// docs/SEMANTICS.md) with arbitrary bytes and check the properties the rules promise:
// FuzzPathKeyRoundTrip (K3, K7, K8: a shown path maps back to exactly its key, a key that maps
// to no path is never visible) and FuzzListingMatchesTree (K1-K6, K8: a delimited S3 listing
// of every directory, paged, gives exactly the entries of the reference tree).
//
// Run one target with, e.g.:
//
//	go test ./fuzz -run='^$' -fuzz=FuzzPathKeyRoundTrip -fuzztime=20s
//
// A failure is saved under fuzz/testdata/fuzz/<Target>/ and then replays in every plain
// `go test ./fuzz`; keep it there and add it as a named regression row to the table tests in
// spec/keymap.
package fuzz
