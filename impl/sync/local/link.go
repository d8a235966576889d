package local

import (
	bolt "go.etcd.io/bbolt"

	"github.com/mount-s3/mount-s3/spec/syncrule"
)

// Link makes dst another name of the file at src (link(2)): one file with several names, as on
// a local disk. Each name has its own record, and the records share the id, so they share the
// data file and open handles; a write, sync, attribute change or utimens through any name
// changes the records of all (eachLinkTx), an unlink removes one name and the data goes with
// the last. The bucket has no links: each name is its own object with the same bytes and
// metadata (Y3), and every change is owed to every name. dst is a new name, so its object is
// owed a PUT now, and the file's ctime is now on every name.
//
// A file whose bytes are not local cannot be linked (ErrNoData: fetch it first): its names
// would otherwise each fetch their own copy. Directories cannot be linked (ErrPermitted), nor
// can anything into or out of lost+found (C5).
func (l *Layer) Link(src, dst string) (Info, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var info Info
	err := l.update(func(tx *bolt.Tx) error {
		if l.inLostFound(src) || l.inLostFound(dst) {
			return ErrPermitted
		}
		r, err := visibleRec(tx, src)
		if err != nil {
			return err
		}
		switch {
		case r.Kind == KindDir || r.State.LostFound:
			return ErrPermitted
		case r.Kind == KindFile && r.State.Data != syncrule.LocalData:
			return ErrNoData
		}
		if r.ID == 0 {
			// A symlink or special file has no data file; the id is what makes its names
			// one file.
			if r.ID, err = l.newDataID(tx); err != nil {
				return err
			}
			if err := putRec(tx, src, r); err != nil {
				return err
			}
		}
		size := r.State.Size
		if r.Kind == KindSymlink {
			size = int64(len(r.Target))
		}
		n, err := l.placeRecordTx(tx, dst, &record{Kind: r.Kind, Attr: r.Attr, Target: r.Target, ID: r.ID}, size)
		if err != nil {
			return err
		}
		if err := l.touchLinksTx(tx, n.ID); err != nil {
			return err
		}
		if n, err = getRec(tx, dst); err != nil {
			return err
		}
		info = n.infoTx(tx, dst)
		return nil
	})
	if err != nil {
		return Info{}, perr("link", src, err)
	}
	return info, nil
}

// touchLinksTx gives every name of id the ctime now: link(2) and unlink(2) change the file's.
// Local only, like every ctime.
func (l *Layer) touchLinksTx(tx *bolt.Tx, id uint64) error {
	now := l.now()
	return eachLinkTx(tx, id, func(_ string, r *record) error {
		r.Attr.Ctime = now
		return nil
	})
}
