package syncrule

import (
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/mount-s3/mount-s3/spec/keymap"
)

// LostFoundDirPrefix starts the name of the lost+found directory in the mount's root (C4).
const LostFoundDirPrefix = ".mount-s3-lost+found-"

// OriginalPathXattr is the extended attribute of a lost+found file that holds the path it was
// moved from (C4), so a user can copy it back.
const OriginalPathXattr = "user.mount-s3.original-path"

// idDigits is the width of the id in a lost+found name: the digits of the largest uint64, so
// that every id has the same width and byte order of names is id order (C4: ids increase).
const idDigits = 20

// maxBaseLen is the longest basename a lost+found name keeps.
const maxBaseLen = keymap.MaxNameLen - idDigits - 1

// LostFoundDir is the name of the lost+found directory of the file system fsid (C4, C5).
func LostFoundDir(fsid string) string { return LostFoundDirPrefix + fsid }

// InLostFound reports whether path is a lost+found directory or inside one (C5): its first
// component is LostFoundDir(fsid), or, with fsid "", any file system's lost+found (one that
// reached the bucket from another mount is no place to import into either).
func InLostFound(fsid, path string) bool {
	first, _, _ := strings.Cut(path, keymap.Delimiter)
	if fsid == "" {
		return strings.HasPrefix(first, LostFoundDirPrefix)
	}
	return first == LostFoundDir(fsid)
}

// LostFoundName is the name in lost+found of a file whose name was base (C4): "<id>-<base>",
// the id zero-padded so that names sort by id. base is cut so the name fits NAME_MAX (K3); a
// cut never splits a UTF-8 character of a valid UTF-8 name, and an invalid one is cut at the
// byte (K5: names are bytes). The id keeps truncated names unique.
// REQUIRES: keymap.ValidName(base), or base == "".
func LostFoundName(id uint64, base string) string {
	if len(base) > maxBaseLen {
		cut := maxBaseLen
		if utf8.ValidString(base) {
			for cut > 0 && !utf8.RuneStart(base[cut]) {
				cut--
			}
		}
		base = base[:cut]
	}
	s := strconv.FormatUint(id, 10)
	return strings.Repeat("0", idDigits-len(s)) + s + "-" + base
}

// ParseLostFoundName is the inverse of LostFoundName, for the engine to find the largest id in
// use when it starts (ids must keep increasing across restarts). The base it returns is the
// possibly truncated one.
func ParseLostFoundName(name string) (id uint64, base string, ok bool) {
	if len(name) <= idDigits || name[idDigits] != '-' {
		return 0, "", false
	}
	for i := 0; i < idDigits; i++ {
		if name[i] < '0' || name[i] > '9' {
			return 0, "", false
		}
	}
	id, err := strconv.ParseUint(name[:idDigits], 10, 64)
	if err != nil {
		return 0, "", false
	}
	return id, name[idDigits+1:], true
}
