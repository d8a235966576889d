package syncrule

import "time"

// Event is a fact the engine reports about one path. Times are parameters, never read from a
// clock, so the rules can be replayed and tested.
type Event interface{ event() }

// LocalWrite: a program changed the file, or created it at an absent path or over a tombstone.
// MetadataOnly is a chmod, chown or utimens (Y7); any other change, truncate included, is a data
// change and leaves the data local (the engine fetches it first where it needs the old bytes,
// Y2). Size is the size after a data change.
type LocalWrite struct {
	At           time.Time
	MetadataOnly bool
	Size         int64
}

// LocalDelete: the file was unlinked (or renamed away: a rename is a delete here and a write at
// the new path, Y9).
type LocalDelete struct{ At time.Time }

// Read: a program read the file's data (Y10 counts from the last use).
type Read struct{ At time.Time }

// Close: close or fsync returned. The data is durable by then (Y4) and the window counts from
// the first change, not from close (Y5), so nothing in the state changes; the event exists so
// that an engine's event log and the tests can name the versions a program closed (C7).
type Close struct {
	At    time.Time
	Fsync bool
}

// Tick: time has passed. Starts the write-back when it is due (Y5) and expires unused clean
// data (Y10).
type Tick struct{ Now time.Time }

// Flush: write back now, ignoring the window (unmount, syncfs). Never expires anything.
type Flush struct{ Now time.Time }

// UploadSucceeded: the upload of snapshot Gen completed and the bucket answered Version.
// A zero Version is an engine bug and the event is ignored.
type UploadSucceeded struct {
	Gen     uint64
	Version Version
}

// UploadFailed: the upload of snapshot Gen did not complete. Conflict means its precondition
// failed (412, or 404 for If-Match on a missing object: C3); the engine then reads what the
// bucket holds now (HEAD) and reports it as Remote (zero if there is no object) and RemoteSize.
// Otherwise the failure is retryable and the file is due again at once; pacing retries is the
// engine's job.
//
// Own means the precondition failed on a version this sync dir wrote itself, an earlier
// upload of the file whose answer never arrived (its op marker says so), and Remote is that
// version: it becomes the base and the upload is retried, since a file cannot conflict with
// its own older bytes.
type UploadFailed struct {
	Gen        uint64
	Conflict   bool
	Remote     Version
	RemoteSize int64
	Own        bool
}

// DeleteSucceeded: the DeleteObject of snapshot Gen completed.
type DeleteSucceeded struct{ Gen uint64 }

// DeleteFailed: as UploadFailed, for a DeleteObject (C6).
type DeleteFailed struct {
	Gen        uint64
	Conflict   bool
	Remote     Version
	RemoteSize int64
}

// RemoteChanged: a poll or an event notification (C2) saw Version at the path's key. At an
// absent path this is the discovery of an object (the import of Y1). The observation must be
// newer than the last operation result fed for the path; when in doubt the engine confirms it
// with HEAD first.
type RemoteChanged struct {
	Version Version
	Size    int64
}

// RemoteDeleted: a poll or an event notification saw that the key has no object.
type RemoteDeleted struct{}

// DataImported: the bytes of Version were fetched into the local layer at At (Y1, Y2, or the
// read after expiry, Y10). Bytes of anything but the current base are stale; the event is then
// ignored and the engine discards them.
type DataImported struct {
	Version Version
	At      time.Time
}

// DataExpired: the engine asks to drop the data now, before ExpireAfter (disk pressure). Only
// the age of Y10 is waived: dirty, in-flight and lost+found data is still never dropped.
type DataExpired struct{}

func (LocalWrite) event()      {}
func (LocalDelete) event()     {}
func (Read) event()            {}
func (Close) event()           {}
func (Tick) event()            {}
func (Flush) event()           {}
func (UploadSucceeded) event() {}
func (UploadFailed) event()    {}
func (DeleteSucceeded) event() {}
func (DeleteFailed) event()    {}
func (RemoteChanged) event()   {}
func (RemoteDeleted) event()   {}
func (DataImported) event()    {}
func (DataExpired) event()     {}

// Action is something Next asks the engine to do. The engine commits the new State and queues
// the bucket operations in one transaction before doing any of them (SYNC.md, invariant 5),
// and does them in the order given.
type Action interface{ action() }

// StartUpload: upload the snapshot of generation Gen (Y6), taken now under the file's lock.
// Exactly one of IfMatch and IfNoneMatch is set (C3). MetadataOnly: only attributes changed
// since Base, so the upload is a CopyObject of Base onto itself with the new metadata and the
// copy-source condition on Base's ETag (Y7); the data need not be local.
type StartUpload struct {
	Gen          uint64
	Base         Version
	IfMatch      string // Base's ETag
	IfNoneMatch  string // "*" for a file the bucket has never had from us
	MetadataOnly bool
}

// StartDelete: delete the object, conditional on Base (C6), for the tombstone of generation Gen.
type StartDelete struct {
	Gen     uint64
	Base    Version
	IfMatch string
}

// MoveToLostFound: move the local version of generation Gen into lost+found (C4) under
// LostFoundName with a fresh id, recording the original path in OriginalPathXattr, durably,
// before the import that follows it. If DataLocal is false only attributes changed, over bytes
// the bucket had as Base: the engine fetches Base by its version id into lost+found (a versioned
// bucket still has it).
type MoveToLostFound struct {
	Gen       uint64
	DataLocal bool
}

// ImportRemote: make the path show Version (C2, C4): replace the local metadata with the
// object's and drop any local data, which is stale. A zero Version imports the absence: the
// file disappears locally. FetchData asks to fetch the new bytes in the background (Y1).
type ImportRemote struct {
	Version   Version
	Size      int64
	FetchData bool
}

// DropData: remove the file's local data; its metadata stays (Y10).
type DropData struct{}

// InvalidateKernelCache: the path's contents or attributes changed under the kernel (C2):
// invalidate its dentry, attributes and pages.
type InvalidateKernelCache struct{}

// CheckRemote: a remote change seen during an operation could not be told apart from this
// mount's own write; read what the bucket holds now (HEAD) and report it as RemoteChanged or
// RemoteDeleted.
type CheckRemote struct{}

func (StartUpload) action()           {}
func (StartDelete) action()           {}
func (MoveToLostFound) action()       {}
func (ImportRemote) action()          {}
func (DropData) action()              {}
func (InvalidateKernelCache) action() {}
func (CheckRemote) action()           {}
