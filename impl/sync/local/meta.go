package local

import "github.com/mount-s3/mount-s3/spec/posixmeta"

// The one mapping between a record's attributes and the object metadata that carries them
// (Y3, posixmeta): the engine writes Meta, the importer and the engine's conflict import read
// with Overlay and KindOfMeta.

var metaKinds = map[Kind]posixmeta.Kind{KindFile: posixmeta.File, KindDir: posixmeta.Dir,
	KindSymlink: posixmeta.Symlink, KindFIFO: posixmeta.FIFO, KindCharDevice: posixmeta.CharDevice,
	KindBlockDevice: posixmeta.BlockDevice, KindSocket: posixmeta.Socket}

// Meta is what the object of info carries in its metadata.
func Meta(info Info) posixmeta.Attr {
	a := info.Attr
	return posixmeta.Attr{Kind: metaKinds[info.Kind], Mode: a.Mode, UID: a.UID, GID: a.GID, Mtime: a.Mtime,
		Rdev: a.Rdev, Xattrs: a.Xattrs, HasMode: true, HasOwner: true, HasMtime: !a.Mtime.IsZero()}
}

// Overlay is a with what metadata m says put on it; what m does not say is left as it is
// (the S9 defaults an import starts from).
func (a Attr) Overlay(m posixmeta.Attr) Attr {
	if m.HasMode {
		a.Mode = m.Mode
	}
	if m.HasOwner {
		a.UID, a.GID = m.UID, m.GID
	}
	if m.HasMtime {
		a.Mtime = m.Mtime
	}
	a.Rdev, a.Xattrs = m.Rdev, m.Xattrs
	return a
}

// KindOfMeta is the kind of record an object of a file key is, by its metadata: a symlink or
// special file where the mode says so, else a regular file.
func KindOfMeta(m posixmeta.Kind) Kind {
	for k, mk := range metaKinds {
		if mk == m && k != KindDir {
			return k
		}
	}
	return KindFile
}
