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
	HeaderMtime = "mtime" // decimal seconds since the epoch, a fraction allowed
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
)

// Kind is the file type the metadata names.
type Kind uint8

const (
	Unknown Kind = iota // no type bits, or type bits of something we do not map (a FIFO)
	File
	Dir
	Symlink
)

// Attr is what the metadata says. The Has fields tell a missing header from a zero value, so
// the caller can apply the defaults of S9 to what is missing and only to that.
type Attr struct {
	Kind     Kind
	Mode     uint32 // permission bits, 07777
	UID, GID uint32
	Mtime    time.Time
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
	return a
}

func (a *Attr) setMode(m uint32) {
	a.Mode, a.HasMode = m&0o7777, true
	switch m & typeMask {
	case typeReg:
		a.Kind = File
	case typeDir:
		a.Kind = Dir
	case typeLnk:
		a.Kind = Symlink
	}
}

// Encode writes the attributes in s3fs's format. The mode carries the type bits of a.Kind
// (a regular file when Kind is Unknown); the mtime is written only if a.HasMtime, with the
// fraction only when there is one, as s3fs writes whole seconds.
func Encode(a Attr) map[string]string {
	t := uint32(typeReg)
	switch a.Kind {
	case Dir:
		t = typeDir
	case Symlink:
		t = typeLnk
	}
	m := map[string]string{
		HeaderMode: strconv.FormatUint(uint64(t|a.Mode&0o7777), 10),
		HeaderUID:  strconv.FormatUint(uint64(a.UID), 10),
		HeaderGID:  strconv.FormatUint(uint64(a.GID), 10),
	}
	if a.HasMtime {
		m[HeaderMtime] = formatTime(a.Mtime)
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
// not through a float, so a value written by Encode reads back exactly.
func parseTime(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, false
	}
	whole, frac, _ := strings.Cut(s, ".")
	sec, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || sec < 0 {
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
