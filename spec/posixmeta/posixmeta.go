// Package posixmeta is the pure codec of rule Y3: POSIX attributes kept in an object's user
// metadata, in s3fs-fuse's format so that a bucket written by either tool reads correctly in
// the other, with Amazon FSx's format accepted on import when s3fs's headers are absent.
//
// Names are as impl/s3 gives user metadata: lower case, without "x-amz-meta-".
package posixmeta

import (
	"strconv"
	"strings"
	"time"
)

// Header names (s3fs-fuse).
const (
	HeaderMode  = "mode"  // decimal st_mode, type bits included: 33188 is a 0644 regular file
	HeaderUID   = "uid"   // decimal
	HeaderGID   = "gid"   // decimal
	HeaderMtime = "mtime" // decimal seconds since the epoch, a fraction allowed; negative before 1970
	HeaderRdev  = "rdev"  // decimal device number of a character or block device
	// HeaderXattr holds the extended attributes: the percent-encoding of a JSON object that
	// maps each name to the standard base64 of its value, {"user.a":"dmFsdWU="}.
	HeaderXattr = "xattr"
)

// Header names (FSx for Lustre / File Gateway style), read only.
const (
	HeaderFSxPermissions = "file-permissions" // octal st_mode, e.g. 0100664
	HeaderFSxOwner       = "file-owner"       // decimal uid
	HeaderFSxGroup       = "file-group"       // decimal gid
)

// File-type bits of st_mode (they are the same on every Unix s3fs-fuse runs on).
const (
	typeMask = 0o170000
	typeReg  = 0o100000
	typeDir  = 0o040000
	typeLnk  = 0o120000
	typeFIFO = 0o010000
	typeChr  = 0o020000
	typeBlk  = 0o060000
	typeSock = 0o140000
)

// Kind is the file type the metadata names.
type Kind uint8

const (
	Unknown Kind = iota // no type bits, or type bits we do not know
	File
	Dir
	Symlink
	FIFO
	CharDevice
	BlockDevice
	Socket
)

// Special reports whether k is a FIFO, a device or a socket: an empty object whose metadata
// is the whole of what it is.
func (k Kind) Special() bool { return k >= FIFO && k <= Socket }

var typeBits = map[Kind]uint32{File: typeReg, Dir: typeDir, Symlink: typeLnk, FIFO: typeFIFO,
	CharDevice: typeChr, BlockDevice: typeBlk, Socket: typeSock}

// Attr is what the metadata says. The Has fields tell a missing header from a zero value, so
// the caller can apply the defaults of S9 to what is missing and only to that.
type Attr struct {
	Kind     Kind
	Mode     uint32 // permission bits, 07777
	UID, GID uint32
	Mtime    time.Time
	Rdev     uint32 // device number of a CharDevice or BlockDevice
	// Xattrs are the extended attributes (HeaderXattr); nil when there are none.
	Xattrs   map[string][]byte
	HasMode  bool
	HasOwner bool // UID and GID (each is taken if present; HasOwner if either was)
	HasMtime bool
}

// Decode reads the attributes from user metadata. s3fs's headers win; FSx's are used for what
// s3fs's do not say. Malformed values are ignored as if absent: a bad header on one object must
// not make the object unreadable.
func Decode(meta map[string]string) Attr {
	var a Attr
	if m, ok := parseUint(meta[HeaderMode], 10); ok {
		a.setMode(m)
	} else if m, ok := parseUint(meta[HeaderFSxPermissions], 8); ok {
		a.setMode(m)
	}
	if u, ok := parseUint(meta[HeaderUID], 10); ok {
		a.UID, a.HasOwner = u, true
	} else if u, ok := parseUint(meta[HeaderFSxOwner], 10); ok {
		a.UID, a.HasOwner = u, true
	}
	if g, ok := parseUint(meta[HeaderGID], 10); ok {
		a.GID, a.HasOwner = g, true
	} else if g, ok := parseUint(meta[HeaderFSxGroup], 10); ok {
		a.GID, a.HasOwner = g, true
	}
	if t, ok := parseTime(meta[HeaderMtime]); ok {
		a.Mtime, a.HasMtime = t, true
	}
	if a.Kind == CharDevice || a.Kind == BlockDevice {
		a.Rdev, _ = parseUint(meta[HeaderRdev], 10)
	}
	a.Xattrs = DecodeXattrs(meta[HeaderXattr])
	return a
}

func (a *Attr) setMode(m uint32) {
	a.Mode, a.HasMode = m&0o7777, true
	for k, bits := range typeBits {
		if m&typeMask == bits {
			a.Kind = k
		}
	}
}

// Encode writes the attributes in s3fs's format. The mode carries the type bits of a.Kind
// (a regular file when Kind is Unknown); the mtime is written only if a.HasMtime, with the
// fraction only when there is one, as s3fs writes whole seconds.
func Encode(a Attr) map[string]string {
	t, ok := typeBits[a.Kind]
	if !ok {
		t = typeReg
	}
	m := map[string]string{
		HeaderMode: strconv.FormatUint(uint64(t|a.Mode&0o7777), 10),
		HeaderUID:  strconv.FormatUint(uint64(a.UID), 10),
		HeaderGID:  strconv.FormatUint(uint64(a.GID), 10),
	}
	if a.HasMtime {
		m[HeaderMtime] = formatTime(a.Mtime)
	}
	if a.Kind == CharDevice || a.Kind == BlockDevice {
		m[HeaderRdev] = strconv.FormatUint(uint64(a.Rdev), 10)
	}
	if x := EncodeXattrs(a.Xattrs); x != "" {
		m[HeaderXattr] = x
	}
	return m
}

func parseUint(s string, base int) (uint32, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, false
	}
	v, err := strconv.ParseUint(s, base, 32)
	return uint32(v), err == nil
}

// parseTime accepts "1700000000" and "1700000000.25". Nanoseconds are taken from the digits,
// not through a float, so a value written by Encode reads back exactly. Before 1970 the whole
// seconds are negative and the fraction still counts forward from them, as formatTime writes:
// "-2.5" is a second and a half before the epoch.
func parseTime(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, false
	}
	whole, frac, _ := strings.Cut(s, ".")
	sec, err := strconv.ParseInt(whole, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	var nsec int64
	if frac != "" {
		if len(frac) > 9 {
			frac = frac[:9]
		}
		n, err := strconv.ParseUint(frac, 10, 32)
		if err != nil {
			return time.Time{}, false
		}
		nsec = int64(n)
		for i := len(frac); i < 9; i++ {
			nsec *= 10
		}
	}
	return time.Unix(sec, nsec), true
}

func formatTime(t time.Time) string {
	sec, nsec := t.Unix(), t.Nanosecond()
	if nsec == 0 {
		return strconv.FormatInt(sec, 10)
	}
	f := strings.TrimRight(strconv.FormatInt(int64(nsec)+1e9, 10)[1:], "0")
	return strconv.FormatInt(sec, 10) + "." + f
}
