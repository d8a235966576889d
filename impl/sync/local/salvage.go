package local

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mount-s3/mount-s3/spec/syncrule"
)

// SalvageFile names the report Salvage writes into the directory it set aside.
const SalvageFile = "RECOVERED.txt"

// Salvaged is what Salvage did.
type Salvaged struct {
	Aside string // where the sync dir now is
	// Pending are the files whose changes had not reached the bucket (or that were in
	// lost+found): their only copy is the named data file under Aside.
	Pending []SalvagedFile
	// DBReadable is false when the metadata database could not be read at all: the data
	// files are then listed by id only, in the report.
	DBReadable bool
	// Queued is how many bucket operations (deletes, the copies and deletes of renames) were
	// still owed: they are not carried over, so those deletes and renames have to be redone.
	Queued int
}

// SalvagedFile is one data file and the path it held.
type SalvagedFile struct {
	Data string // path of the data file
	Path string // the file's path in the mount ("" if unknown)
	Size int64
	Why  string // "not uploaded" or "lost+found"
}

// Salvage recovers from a sync dir that Open refuses as corrupt, without discarding anything:
// it takes the sync dir's lock (no mount may be using it), renames dir to dir.broken-TIME,
// and writes there a report (SalvageFile) of which data file held which path, read from the
// damaged database as far as it can be read. The next mount with dir starts afresh and
// imports the bucket again (Y1); what had not reached the bucket is in the report, to be
// copied back into the mount.
func Salvage(dir string, now time.Time) (Salvaged, error) {
	dir = filepath.Clean(dir)
	lock, err := os.OpenFile(filepath.Join(dir, LockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return Salvaged{}, fmt.Errorf("sync dir %s: %w", dir, err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return Salvaged{}, fmt.Errorf("%w: %s (stop the mount that uses it first)", ErrLocked, dir)
	}
	res := Salvaged{Aside: dir + ".broken-" + now.UTC().Format("20060102T150405Z")}
	if err := os.Rename(dir, res.Aside); err != nil {
		return Salvaged{}, fmt.Errorf("setting %s aside: %w", dir, err)
	}
	res.Pending, res.Queued, res.DBReadable = readPending(res.Aside)
	if err := writeReport(res); err != nil {
		return res, fmt.Errorf("%s is set aside, but its report could not be written: %w", res.Aside, err)
	}
	return res, nil
}

// readPending lists the data files whose content is not in the bucket, from the damaged
// database as far as it can be read, and every data file no record it could read accounts
// for (as "unknown": a record too damaged to decode may have been dirty). It also counts the
// queued bucket operations.
func readPending(aside string) (files []SalvagedFile, queued int, readable bool) {
	dataDir := filepath.Join(aside, DataDir)
	accounted := map[string]bool{}
	func() {
		defer func() { recover() }() // bbolt may panic on a damaged page
		db, err := bolt.Open(filepath.Join(aside, DBFile), 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
		if err != nil {
			return
		}
		defer db.Close()
		err = db.View(func(tx *bolt.Tx) error {
			b := tx.Bucket(bNodes)
			if b == nil {
				return errors.New("no records")
			}
			if q := tx.Bucket(bQueue); q != nil {
				queued = q.Stats().KeyN
			}
			return b.ForEach(func(k, v []byte) error {
				path := pathOfNodeKey(k)
				r, err := decodeRec(path, v)
				if err != nil || r.Kind != KindFile || r.ID == 0 {
					return nil // a damaged record: its data file is listed as unknown below
				}
				name := filepath.Join(dataDir, fmt.Sprintf("%016x", r.ID))
				accounted[filepath.Base(name)] = true
				if r.State.Data != syncrule.LocalData || !onlyCopy(r) {
					return nil // clean: the bucket has these bytes
				}
				why, orig := "not uploaded", path
				if r.State.LostFound {
					why = "lost+found"
					if r.OrigPath != "" {
						orig = r.OrigPath
					}
				}
				size := int64(-1) // the data file is missing: listed, so that the loss is known
				if fi, err := os.Stat(name); err == nil {
					size = fi.Size()
				}
				files = append(files, SalvagedFile{Data: name, Path: orig, Size: size, Why: why})
				return nil
			})
		})
		readable = err == nil
	}()
	if !readable {
		files, queued, accounted = nil, 0, map[string]bool{}
	}
	ents, _ := os.ReadDir(dataDir)
	for _, e := range ents {
		if accounted[e.Name()] {
			continue
		}
		if fi, err := e.Info(); err == nil {
			files = append(files, SalvagedFile{Data: filepath.Join(dataDir, e.Name()), Size: fi.Size(), Why: "unknown"})
		}
	}
	sort.Slice(files, func(i, j int) bool {
		return files[i].Path < files[j].Path || files[i].Path == files[j].Path && files[i].Data < files[j].Data
	})
	return files, queued, readable
}

func writeReport(res Salvaged) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# mount-s3 sync --recover set this sync dir aside. Nothing was deleted.\n")
	if res.DBReadable {
		fmt.Fprintf(&b, "# Files whose latest version had not reached the bucket (copy them back into the mount):\n")
	} else {
		fmt.Fprintf(&b, "# The database could not be read: every data file is listed, by id. Clean files are copies of\n")
		fmt.Fprintf(&b, "# objects in the bucket; the others hold changes that had not reached it.\n")
	}
	if res.Queued > 0 {
		fmt.Fprintf(&b, "# %d bucket operations (deletes, renames) were still owed and are not carried over: redo them.\n", res.Queued)
	}
	fmt.Fprintf(&b, "# data file\tsize (-1: missing)\twhy\tpath in the mount\n")
	for _, f := range res.Pending {
		fmt.Fprintf(&b, "%s\t%d\t%s\t/%s\n", f.Data, f.Size, f.Why, f.Path)
	}
	return os.WriteFile(filepath.Join(res.Aside, SalvageFile), []byte(b.String()), 0o600)
}
