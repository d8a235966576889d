package syncrule

import (
	"errors"
	"fmt"
	"time"
)

// Version identifies one state of an object in the bucket (C1). The zero Version means "no
// object": the base of a file never uploaded, and what a remote delete leaves.
//
// ETags are compared as the engine gives them; it must normalise them once (S3 quotes them).
type Version struct {
	ETag      string
	VersionID string // empty in an unversioned bucket, and in listings, which do not carry it
}

// IsZero reports whether v means "no object".
func (v Version) IsZero() bool { return v.ETag == "" && v.VersionID == "" }

// Same reports whether v and o are the same object version. A listing (the poll of C2) reports
// ETags without version ids, so a missing version id matches any: otherwise every poll of a
// versioned bucket would look like a remote change and turn dirty files into conflicts.
func (v Version) Same(o Version) bool {
	if v.IsZero() || o.IsZero() {
		return v.IsZero() && o.IsZero()
	}
	if v.ETag != o.ETag {
		return false
	}
	return v.VersionID == "" || o.VersionID == "" || v.VersionID == o.VersionID
}

// DataState says whether a file's bytes are in the local layer.
type DataState uint8

const (
	// NoData: metadata only. Never fetched (a large file, Y2), or dropped because the
	// bucket's version replaced it (C2); reads go to the bucket until DataImported.
	NoData DataState = iota
	// LocalData: the bytes are in the local layer (imported, Y1, or written locally, Y4).
	LocalData
	// ExpiredData: dropped by expiry (Y10). It behaves as NoData; it is kept apart so that
	// a listing of the store can tell an expired file from one never fetched.
	ExpiredData
)

func (d DataState) String() string {
	if names := [...]string{NoData: "none", LocalData: "local", ExpiredData: "expired"}; int(d) < len(names) {
		return names[d]
	}
	return fmt.Sprintf("DataState(%d)", uint8(d))
}

// Op is the bucket operation in flight for a file. There is at most one per file, so that the
// precondition of each (C3, C6) is always the base the previous one left.
type Op uint8

const (
	OpNone   Op = iota
	OpUpload    // PUT, or CopyObject onto itself for a metadata-only change (Y7)
	OpDelete    // DeleteObject (Y7)
)

func (o Op) String() string {
	if names := [...]string{OpNone: "none", OpUpload: "upload", OpDelete: "delete"}; int(o) < len(names) {
		return names[o]
	}
	return fmt.Sprintf("Op(%d)", uint8(o))
}

// State is everything the rules need to know about one path. It is the record the engine
// keeps durably in its metadata store (SYNC.md), so it holds only values, no pointers: the
// engine can encode it and a copy never aliases another.
//
// The zero State is "absent": no file at the path and nothing known about an object there.
type State struct {
	// Exists: a file is at the path locally.
	Exists bool
	// Deleted: the file was deleted locally and DeleteObject of Base is still owed (a
	// tombstone). Implies !Exists.
	Deleted bool
	// LostFound: the path is in the lost+found directory (C4). Such a file is never uploaded
	// (C5) and its data never expires: it is the only copy.
	LostFound bool

	Data DataState
	Size int64

	// Base is the version the file was last synced with (C1); zero if the bucket has no
	// object for it (a new file, or after a remote delete).
	Base Version

	// Gen counts local changes (data, metadata, delete); it never goes back, so a result of an
	// operation started for an older generation is always recognisable as stale.
	Gen uint64
	// CleanGen is the generation the bucket holds as Base. The file is dirty iff Gen != CleanGen;
	// dirtiness is a generation and not a time so that a zero timestamp cannot make it clean.
	CleanGen uint64
	// ContentGen is the generation of the last data change. If it is not newer than CleanGen,
	// only attributes changed and the upload is a CopyObject onto itself (Y7).
	ContentGen uint64
	// DirtySince is the time of the first change the bucket does not have (Y5); zero if clean.
	DirtySince time.Time

	// InFlight is the bucket operation running, for the snapshot of generation InFlightGen (Y6).
	InFlight    Op
	InFlightGen uint64
	// PendingSince is the time of the first change after the in-flight snapshot: the next
	// round's window counts from it (Y5). Zero if there is none.
	PendingSince time.Time

	// RemoteSeen and Remote hold a remote change seen while an operation was in flight. It is
	// not acted on then, because it may be this mount's own write showing up in a poll or an
	// event notification before the response did; the operation's result decides (see Next).
	RemoteSeen bool
	Remote     Version

	// LastUsed is when the data was last read, written or imported: the clock of Y10.
	LastUsed time.Time
}

// Dirty reports whether the file has local changes (including a local delete) the bucket does
// not have yet.
func (s State) Dirty() bool { return s.Gen != s.CleanGen }

// Absent reports whether there is neither a file nor a pending delete at the path. An absent
// state with nothing in flight carries no information the bucket does not have, so the engine
// may drop its record.
func (s State) Absent() bool { return !s.Exists && !s.Deleted }

// NewLostFound is the state of a file just moved into lost+found (C4): its data is local and
// it has no base, because it is never uploaded (C5).
func NewLostFound(size int64, at time.Time) State {
	return State{Exists: true, LostFound: true, Data: LocalData, Size: size, LastUsed: at}
}

// Validate checks the relations between the fields that Next maintains. The engine should run
// it on every record it loads, so that a corrupt store is refused instead of acted on (SYNC.md:
// a corrupt store never silently discards dirty data).
func (s State) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if s.Deleted && s.Exists {
		bad("deleted and existing")
	}
	if s.Data != NoData && !s.Exists {
		bad("data %v without a file", s.Data)
	}
	if s.Data > ExpiredData || s.InFlight > OpDelete {
		bad("unknown data state %v or op %v", s.Data, s.InFlight)
	}
	if s.CleanGen > s.Gen || s.ContentGen > s.Gen {
		bad("generations out of order: gen %d clean %d content %d", s.Gen, s.CleanGen, s.ContentGen)
	}
	if !s.Dirty() && (!s.DirtySince.IsZero() || s.InFlight != OpNone) {
		bad("clean with dirty-since %v or op %v", s.DirtySince, s.InFlight)
	}
	if s.InFlight != OpNone && (s.InFlightGen <= s.CleanGen || s.InFlightGen > s.Gen) {
		bad("op %v for gen %d outside (clean %d, gen %d]", s.InFlight, s.InFlightGen, s.CleanGen, s.Gen)
	}
	if s.InFlight == OpNone && s.InFlightGen != 0 {
		bad("snapshot gen %d with nothing in flight", s.InFlightGen)
	}
	if !s.PendingSince.IsZero() && (s.InFlight == OpNone || s.Gen == s.InFlightGen) {
		bad("pending-since without a change after an in-flight snapshot")
	}
	if s.RemoteSeen && s.InFlight == OpNone {
		bad("remote change held with nothing in flight")
	}
	if s.LostFound && (s.Dirty() || s.Deleted || !s.Base.IsZero()) {
		bad("lost+found file dirty, deleted or with a base (C5)")
	}
	if s.Deleted && (!s.Dirty() || s.Base.IsZero() && s.InFlight == OpNone) {
		bad("tombstone that is clean or has nothing to delete")
	}
	if s.Absent() && (s.Dirty() || !s.Base.IsZero()) {
		bad("absent but dirty or with a base")
	}
	return errors.Join(errs...)
}

// Params are the tunables of the rules.
type Params struct {
	// WriteBackDelay is the aggregation window (Y5): a change is uploaded this long after the
	// first unsynced change. Zero uploads at the next Tick.
	WriteBackDelay time.Duration
	// ExpireAfter is how long clean data may go unused before it is dropped (Y10). Negative
	// disables expiry; zero expires clean data at the next Tick.
	ExpireAfter time.Duration
	// ImportThreshold: the data of an object smaller than this is fetched in the background
	// when its metadata is imported (Y1).
	ImportThreshold int64
}

// Defaults of the command-line flags (Y1, Y5, Y10).
const (
	DefaultWriteBackDelay  = 60 * time.Second
	DefaultExpireAfter     = 30 * 24 * time.Hour
	DefaultImportThreshold = 128 << 10
)

// DefaultParams are the parameters with the defaults of Y1, Y5 and Y10.
func DefaultParams() Params {
	return Params{
		WriteBackDelay:  DefaultWriteBackDelay,
		ExpireAfter:     DefaultExpireAfter,
		ImportThreshold: DefaultImportThreshold,
	}
}

// DueAt is when the file's next bucket operation is due (Y5): the first change the bucket
// does not have, plus the window. While an operation is in flight it is the first change after
// that operation's snapshot plus the window, so a burst that straddles an upload costs one more
// PUT, not one per change; the result of the running operation does not move it. The zero time
// means nothing is due: the file is clean, in lost+found, or in flight with no newer change.
func DueAt(s State, p Params) time.Time {
	switch {
	case !s.Dirty() || s.LostFound:
		return time.Time{}
	case s.InFlight != OpNone && s.Gen == s.InFlightGen:
		return time.Time{}
	case s.InFlight != OpNone:
		return s.PendingSince.Add(p.WriteBackDelay)
	}
	return s.DirtySince.Add(p.WriteBackDelay)
}

// UploadDue reports whether a Tick at now starts the file's write-back: an upload, or the
// DeleteObject of a local delete. Never while another operation for the file is in flight,
// and never for lost+found (C5).
func UploadDue(s State, now time.Time, p Params) bool {
	return canStart(s) && !now.Before(DueAt(s, p))
}

func canStart(s State) bool { return s.Dirty() && !s.LostFound && s.InFlight == OpNone }

// MayExpire reports whether a Tick at now drops the file's data (Y10): the data is local and
// has not been used for ExpireAfter, and the file is clean with nothing in flight, so the
// bucket holds exactly these bytes. Metadata is never dropped. Lost+found data never expires:
// the bucket does not have it (C5).
func MayExpire(s State, now time.Time, p Params) bool {
	return mayDrop(s) && p.ExpireAfter >= 0 && now.Sub(s.LastUsed) >= p.ExpireAfter
}

// ExpireSweepEvery is how often unused data is looked for (Y10): a tenth of ExpireAfter, so a
// file's data goes at most 10% late, but at least every second and at most every hour. Zero
// when expiry is off (ExpireAfter < 0).
func ExpireSweepEvery(p Params) time.Duration {
	if p.ExpireAfter < 0 {
		return 0
	}
	return min(max(p.ExpireAfter/10, time.Second), time.Hour)
}

// mayDrop is the safety half of MayExpire, without the age.
func mayDrop(s State) bool {
	return s.Exists && !s.LostFound && !s.Dirty() && s.InFlight == OpNone && s.Data == LocalData
}
