package chaos

import (
	"bytes"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strconv"
	"strings"
)

// Content is the body of version ver of the file tagged tag, size bytes long (at least its
// header): a header line "tag#ver#size" and then bytes drawn from a generator seeded by the
// tag and version. Any byte out of place (a torn upload, two versions mixed, a range read at
// the wrong offset) makes Verify fail.
func Content(tag string, ver, size int) []byte {
	head := fmt.Sprintf("%s#%d#%d\n", tag, ver, size)
	if size < len(head) {
		size = len(head)
		head = fmt.Sprintf("%s#%d#%d\n", tag, ver, size)
		if len(head) > size { // the size grew a digit
			size = len(head)
			head = fmt.Sprintf("%s#%d#%d\n", tag, ver, size)
		}
	}
	b := make([]byte, size)
	copy(b, head)
	fill(b[len(head):], tag, ver)
	return b
}

func fill(b []byte, tag string, ver int) {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s\x00%d", tag, ver)
	r := rand.New(rand.NewPCG(h.Sum64(), uint64(ver)))
	for i := 0; i < len(b); i += 8 {
		x := r.Uint64()
		for j := 0; j < 8 && i+j < len(b); j++ {
			b[i+j] = byte(x >> (8 * j))
		}
	}
}

// Version names one version of one file.
type Version struct {
	Tag string
	Ver int
}

func (v Version) String() string { return v.Tag + "#" + strconv.Itoa(v.Ver) }

// Verify reports which version b is, or an error saying how it is not a whole version.
func Verify(b []byte) (Version, error) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 || i > 200 {
		return Version{}, fmt.Errorf("no header in %d bytes (starts %q)", len(b), prefix(b))
	}
	f := strings.Split(string(b[:i]), "#")
	if len(f) != 3 {
		return Version{}, fmt.Errorf("bad header %q", b[:i])
	}
	ver, err1 := strconv.Atoi(f[1])
	size, err2 := strconv.Atoi(f[2])
	if err1 != nil || err2 != nil {
		return Version{}, fmt.Errorf("bad header %q", b[:i])
	}
	v := Version{Tag: f[0], Ver: ver}
	if size != len(b) {
		return v, fmt.Errorf("%s: %d bytes, its header says %d (torn)", v, len(b), size)
	}
	want := make([]byte, len(b)-i-1)
	fill(want, v.Tag, v.Ver)
	if !bytes.Equal(want, b[i+1:]) {
		at := 0
		for at < len(want) && want[at] == b[i+1+at] {
			at++
		}
		return v, fmt.Errorf("%s: wrong bytes from offset %d of %d (mixed or corrupted)", v, i+1+at, len(b))
	}
	return v, nil
}

func prefix(b []byte) []byte {
	if len(b) > 40 {
		return b[:40]
	}
	return b
}

// VerifyPrefix reports whether b is the start of some whole version (empty counts), for a
// read that a concurrent truncation ended early.
func VerifyPrefix(b []byte) bool {
	if len(b) == 0 {
		return true
	}
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return len(b) < 200 // the header itself was cut
	}
	f := strings.Split(string(b[:i]), "#")
	if len(f) != 3 {
		return false
	}
	ver, err1 := strconv.Atoi(f[1])
	size, err2 := strconv.Atoi(f[2])
	if err1 != nil || err2 != nil || len(b) > size {
		return false
	}
	want := make([]byte, size-i-1)
	fill(want, f[0], ver)
	return bytes.Equal(want[:len(b)-i-1], b[i+1:])
}
