package local

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"time"

	"github.com/mount-s3/mount-s3/spec/syncrule"
)

// A record is stored in a compact binary form (format 3): every stat, lookup, getxattr and
// fsync decodes one, and `ls -l` of a directory decodes each entry's; decoding JSON took 40%
// of the mount's CPU in an `ls -l` of 10,000 imported entries. Records written by formats 1
// and 2 are JSON objects and still decode: their first byte is '{', never recBinary. A
// record is rewritten in the binary form when it next changes.
//
// The layout is the fields of record in order, integers as varints, strings and byte strings
// with a length, times as seconds and nanoseconds since the Unix epoch (a zero time as one
// 0 byte), booleans packed in flag bytes, extended attributes in name order. A field added
// to record must be added to encodeRec and decodeRecBinary; TestRecordCodecRoundTrip fills
// every field by reflection and fails if one is left out.
const recBinary byte = 0x01

func encodeRec(r *record) []byte {
	e := encoder{b: make([]byte, 0, 128)}
	e.b = append(e.b, recBinary, byte(r.Kind))
	e.uvarint(r.ID)

	a := &r.Attr
	e.uvarint(uint64(a.Mode))
	e.uvarint(uint64(a.UID))
	e.uvarint(uint64(a.GID))
	e.time(a.Mtime)
	e.time(a.Ctime)
	e.time(a.Atime)
	e.uvarint(uint64(a.Rdev))
	names := make([]string, 0, len(a.Xattrs))
	for k := range a.Xattrs {
		names = append(names, k)
	}
	slices.Sort(names)
	e.uvarint(uint64(len(names)))
	for _, k := range names {
		e.string(k)
		e.bytes(a.Xattrs[k])
	}
	// A nil and an empty map differ in nothing a program sees, but keep them apart so that a
	// record decodes to exactly what was encoded.
	e.bool(a.Xattrs != nil)
	e.string(r.Target)

	s := &r.State
	e.flags(s.Exists, s.Deleted, s.LostFound, s.RemoteSeen)
	e.b = append(e.b, byte(s.Data))
	e.varint(s.Size)
	e.version(s.Base)
	e.uvarint(s.Gen)
	e.uvarint(s.CleanGen)
	e.uvarint(s.ContentGen)
	e.time(s.DirtySince)
	e.b = append(e.b, byte(s.InFlight))
	e.uvarint(s.InFlightGen)
	e.time(s.PendingSince)
	e.version(s.Remote)
	e.time(s.LastUsed)

	e.string(r.OrigPath)
	e.flags(r.Imported, r.AttrPending)
	e.uvarint(r.PendingCopy)
	e.uvarint(r.PendingCopyGen)
	return e.b
}

func decodeRecBinary(v []byte) (*record, error) {
	d := decoder{b: v[1:]}
	r := &record{}
	r.Kind = Kind(d.byte())
	r.ID = d.uvarint()

	a := &r.Attr
	a.Mode = d.uint32()
	a.UID = d.uint32()
	a.GID = d.uint32()
	a.Mtime = d.time()
	a.Ctime = d.time()
	a.Atime = d.time()
	a.Rdev = d.uint32()
	if n := d.uvarint(); n > 0 && d.err == nil {
		if n > uint64(len(d.b)/2) { // each takes two bytes at least
			d.fail()
		} else {
			a.Xattrs = make(map[string][]byte, n)
			for i := uint64(0); i < n && d.err == nil; i++ {
				k := d.string()
				a.Xattrs[k] = d.bytes()
			}
		}
	}
	if d.bool() && a.Xattrs == nil {
		a.Xattrs = map[string][]byte{}
	}
	r.Target = d.string()

	s := &r.State
	f := d.flags(4)
	s.Exists, s.Deleted, s.LostFound, s.RemoteSeen = f&1 != 0, f&2 != 0, f&4 != 0, f&8 != 0
	s.Data = syncrule.DataState(d.byte())
	s.Size = d.varint()
	s.Base = d.version()
	s.Gen = d.uvarint()
	s.CleanGen = d.uvarint()
	s.ContentGen = d.uvarint()
	s.DirtySince = d.time()
	s.InFlight = syncrule.Op(d.byte())
	s.InFlightGen = d.uvarint()
	s.PendingSince = d.time()
	s.Remote = d.version()
	s.LastUsed = d.time()

	r.OrigPath = d.string()
	f = d.flags(2)
	r.Imported, r.AttrPending = f&1 != 0, f&2 != 0
	r.PendingCopy = d.uvarint()
	r.PendingCopyGen = d.uvarint()
	if d.err == nil && len(d.b) != 0 {
		d.err = errors.New("trailing bytes")
	}
	return r, d.err
}

type encoder struct{ b []byte }

func (e *encoder) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *encoder) varint(v int64)   { e.b = binary.AppendVarint(e.b, v) }
func (e *encoder) bytes(v []byte)   { e.uvarint(uint64(len(v))); e.b = append(e.b, v...) }
func (e *encoder) string(v string)  { e.uvarint(uint64(len(v))); e.b = append(e.b, v...) }
func (e *encoder) bool(v bool)      { e.flags(v) }

func (e *encoder) flags(fs ...bool) {
	var f byte
	for i, v := range fs {
		if v {
			f |= 1 << i
		}
	}
	e.b = append(e.b, f)
}

func (e *encoder) version(v syncrule.Version) {
	e.string(v.ETag)
	e.string(v.VersionID)
}

// time: 0 for the zero time, else 1, the seconds and the nanoseconds. The location is not
// kept (times decode in UTC); the monotonic reading never was.
func (e *encoder) time(t time.Time) {
	if t.IsZero() {
		e.b = append(e.b, 0)
		return
	}
	e.b = append(e.b, 1)
	e.varint(t.Unix())
	e.uvarint(uint64(t.Nanosecond()))
}

// decoder reads what encoder wrote; the first malformed field sets err, and every read after
// it returns zero.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = errors.New("truncated or malformed")
	}
	d.b = nil
}

func (d *decoder) byte() byte {
	if len(d.b) == 0 {
		d.fail()
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) bool() bool { return d.flags(1) != 0 }

// flags reads a byte of n flags; a bit beyond them is damage.
func (d *decoder) flags(n int) byte {
	f := d.byte()
	if f>>n != 0 {
		d.fail()
		return 0
	}
	return f
}

func (d *decoder) uvarint() uint64 { return varintOf(d, binary.Uvarint) }
func (d *decoder) varint() int64   { return varintOf(d, binary.Varint) }

func varintOf[T uint64 | int64](d *decoder, read func([]byte) (T, int)) T {
	v, n := read(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) uint32() uint32 {
	v := d.uvarint()
	if v > math.MaxUint32 {
		d.fail()
		return 0
	}
	return uint32(v)
}

// take is the next length-prefixed run of bytes, still in the input.
func (d *decoder) take() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte  { return bytes.Clone(d.take()) }
func (d *decoder) string() string { return string(d.take()) }

func (d *decoder) version() syncrule.Version {
	return syncrule.Version{ETag: d.string(), VersionID: d.string()}
}

func (d *decoder) time() time.Time {
	switch d.byte() {
	case 0:
		return time.Time{}
	case 1:
		s := d.varint()
		ns := d.uvarint()
		if ns >= 1e9 {
			d.fail()
			return time.Time{}
		}
		return time.Unix(s, int64(ns)).UTC()
	}
	d.fail()
	return time.Time{}
}
