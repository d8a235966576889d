package syncrule_test

import (
	"reflect"
	"testing"
	"time"

	. "github.com/mount-s3/mount-s3/spec/syncrule"
)

// Table tests for the per-path rules. Every row cites the rule of docs/SEMANTICS.md it checks
// in its `rule` field, so a reader can go from a rule to its examples.

var (
	t0  = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	sec = time.Second
	day = 24 * time.Hour

	vBase = Version{ETag: `"base"`, VersionID: "v1"}
	vRem  = Version{ETag: `"remote"`, VersionID: "v2"}
	vUp   = Version{ETag: `"ours"`, VersionID: "v3"}
)

func at(d time.Duration) time.Time { return t0.Add(d) }

// with returns a copy of s changed by f.
func with(s State, f func(*State)) State { f(&s); return s }

// clean is a synced file with local data, last used at t0.
var clean = State{Exists: true, Data: LocalData, Size: 10, Base: vBase, Gen: 3, CleanGen: 3, ContentGen: 2, LastUsed: t0}

// dirty is clean with a data change at t0+5s.
var dirty = with(clean, func(s *State) { s.Gen, s.ContentGen, s.DirtySince, s.Size, s.LastUsed = 4, 4, at(5*sec), 20, at(5*sec) })

// uploading is dirty with its upload of gen 4 running.
var uploading = with(dirty, func(s *State) { s.InFlight, s.InFlightGen = OpUpload, 4 })

// changedDuring is uploading with one more change at t0+70s.
var changedDuring = with(uploading, func(s *State) { s.Gen, s.ContentGen, s.PendingSince = 5, 5, at(70*sec) })

// newFile was created at t0 and never uploaded.
var newFile = State{Exists: true, Data: LocalData, Size: 5, Gen: 1, ContentGen: 1, DirtySince: t0, LastUsed: t0}

// tombstone is clean deleted locally at t0+5s.
var tombstone = with(clean, func(s *State) {
	s.Exists, s.Deleted, s.Data, s.Size, s.Gen, s.DirtySince = false, true, NoData, 0, 4, at(5*sec)
})

var lostFound = NewLostFound(10, t0)

func importOf(v Version, size int64, fetch bool) []Action {
	return []Action{ImportRemote{Version: v, Size: size, FetchData: fetch}, InvalidateKernelCache{}}
}

func TestNext(t *testing.T) {
	p := DefaultParams()
	tests := []struct {
		rule, name string
		s          State
		e          Event
		want       State
		acts       []Action
	}{
		// Write-back (Y4-Y7).
		{"Y5", "create at an absent path starts the window", State{}, LocalWrite{At: t0, Size: 5}, newFile, nil},
		{"Y5", "a later change keeps the window's start", dirty, LocalWrite{At: at(30 * sec), Size: 30},
			with(dirty, func(s *State) { s.Gen, s.ContentGen, s.Size, s.LastUsed = 5, 5, 30, at(30*sec) }), nil},
		{"Y5", "not uploaded before the window ends", dirty, Tick{Now: at(64 * sec)}, dirty, nil},
		{"Y5 C3", "existing file at the window's end: If-Match base", dirty, Tick{Now: at(65 * sec)}, uploading,
			[]Action{StartUpload{Gen: 4, Base: vBase, IfMatch: vBase.ETag}}},
		{"Y5 C3", "new file: If-None-Match *", newFile, Tick{Now: at(60 * sec)},
			with(newFile, func(s *State) { s.InFlight, s.InFlightGen = OpUpload, 1 }),
			[]Action{StartUpload{Gen: 1, IfNoneMatch: "*"}}},
		{"Y5", "flush ignores the window", dirty, Flush{Now: at(6 * sec)}, uploading,
			[]Action{StartUpload{Gen: 4, Base: vBase, IfMatch: vBase.ETag}}},
		{"Y5", "one operation at a time", changedDuring, Tick{Now: at(day)}, changedDuring, nil},
		{"Y4", "close changes nothing: the data is already durable", dirty, Close{At: at(6 * sec), Fsync: true}, dirty, nil},
		{"Y7", "chmod of a file whose data is not local keeps it metadata-only",
			with(clean, func(s *State) { s.Data = NoData }), LocalWrite{At: t0, MetadataOnly: true},
			with(clean, func(s *State) { s.Data, s.Gen, s.DirtySince = NoData, 4, t0 }), nil},
		{"Y7", "a metadata-only change uploads as a copy onto itself",
			with(clean, func(s *State) { s.Gen, s.DirtySince = 4, t0 }), Tick{Now: at(60 * sec)},
			with(clean, func(s *State) { s.Gen, s.DirtySince, s.InFlight, s.InFlightGen = 4, t0, OpUpload, 4 }),
			[]Action{StartUpload{Gen: 4, Base: vBase, IfMatch: vBase.ETag, MetadataOnly: true}}},
		{"Y6", "success of the latest snapshot makes the file clean", uploading, UploadSucceeded{Gen: 4, Version: vUp},
			with(dirty, func(s *State) { s.Base, s.CleanGen, s.DirtySince = vUp, 4, time.Time{} }), nil},
		{"Y5 Y6", "a change during the upload stays dirty, due from its own time", changedDuring, UploadSucceeded{Gen: 4, Version: vUp},
			with(changedDuring, func(s *State) {
				s.Base, s.CleanGen, s.InFlight, s.InFlightGen, s.DirtySince, s.PendingSince = vUp, 4, OpNone, 0, at(70*sec), time.Time{}
			}), nil},
		{"Y6", "a result for another snapshot is ignored", changedDuring, UploadSucceeded{Gen: 5, Version: vUp}, changedDuring, nil},
		{"Y5", "a retryable failure is due again at once", changedDuring, UploadFailed{Gen: 4},
			with(changedDuring, func(s *State) { s.InFlight, s.InFlightGen, s.PendingSince = OpNone, 0, time.Time{} }), nil},
		{"Y7", "local delete of a synced file owes a DeleteObject", clean, LocalDelete{At: at(5 * sec)}, tombstone, nil},
		{"Y7", "local delete of a file never uploaded leaves nothing", newFile, LocalDelete{At: at(sec)},
			State{Gen: 2, CleanGen: 2, ContentGen: 1, LastUsed: t0}, nil},
		{"Y7 C6", "the delete is conditional on the base", tombstone, Tick{Now: at(65 * sec)},
			with(tombstone, func(s *State) { s.InFlight, s.InFlightGen = OpDelete, 4 }),
			[]Action{StartDelete{Gen: 4, Base: vBase, IfMatch: vBase.ETag}}},
		{"Y7", "a completed delete leaves the path absent",
			with(tombstone, func(s *State) { s.InFlight, s.InFlightGen = OpDelete, 4 }), DeleteSucceeded{Gen: 4},
			State{Gen: 4, CleanGen: 4, ContentGen: 2, LastUsed: t0}, nil},
		{"Y5 Y7", "recreating a deleted file within the window folds into one PUT", tombstone, LocalWrite{At: at(9 * sec), Size: 3},
			with(tombstone, func(s *State) {
				s.Exists, s.Deleted, s.Data, s.Size, s.Gen, s.ContentGen, s.LastUsed = true, false, LocalData, 3, 5, 5, at(9*sec)
			}), nil},
		{"Y7", "deleting a new file during its first upload deletes what the upload creates",
			with(newFile, func(s *State) { s.InFlight, s.InFlightGen = OpUpload, 1 }), LocalDelete{At: at(2 * sec)},
			State{Deleted: true, Gen: 2, ContentGen: 1, DirtySince: t0, InFlight: OpUpload, InFlightGen: 1, PendingSince: at(2 * sec), LastUsed: t0}, nil},

		// Remote changes and conflicts (C1-C6).
		{"C1", "a poll without version ids does not see a change", clean, RemoteChanged{Version: Version{ETag: vBase.ETag}, Size: 10}, clean, nil},
		{"C2 Y1", "remote change to a clean small file: import, refetch", clean, RemoteChanged{Version: vRem, Size: 7},
			with(clean, func(s *State) { s.Base, s.Data, s.Size = vRem, NoData, 7 }), importOf(vRem, 7, true)},
		{"C2 Y2", "remote change to a clean large file: import metadata only", clean, RemoteChanged{Version: vRem, Size: 1 << 30},
			with(clean, func(s *State) { s.Base, s.Data, s.Size = vRem, NoData, 1<<30 }), importOf(vRem, 1<<30, false)},
		{"C2 Y10", "remote change to an expired file does not fetch it", with(clean, func(s *State) { s.Data = ExpiredData }),
			RemoteChanged{Version: vRem, Size: 7},
			with(clean, func(s *State) { s.Base, s.Data, s.Size = vRem, NoData, 7 }), importOf(vRem, 7, false)},
		{"C2", "remote delete of a clean file removes it", clean, RemoteDeleted{},
			State{Gen: 3, CleanGen: 3, ContentGen: 2, LastUsed: t0}, importOf(Version{}, 0, false)},
		{"Y1", "an object discovered at an absent path is imported", State{}, RemoteChanged{Version: vRem, Size: 7},
			State{Exists: true, Size: 7, Base: vRem}, importOf(vRem, 7, true)},
		{"C3 C4", "remote change to a dirty file: local version to lost+found, then import", dirty, RemoteChanged{Version: vRem, Size: 7},
			with(dirty, func(s *State) { s.Base, s.CleanGen, s.DirtySince, s.Data, s.Size = vRem, 4, time.Time{}, NoData, 7 }),
			append([]Action{MoveToLostFound{Gen: 4, DataLocal: true}}, importOf(vRem, 7, true)...)},
		{"C3 C4", "a new file whose key another writer created", newFile, RemoteChanged{Version: vRem, Size: 7},
			State{Exists: true, Size: 7, Base: vRem, Gen: 1, CleanGen: 1, ContentGen: 1, LastUsed: t0},
			append([]Action{MoveToLostFound{Gen: 1, DataLocal: true}}, importOf(vRem, 7, true)...)},
		{"C6 C4", "remote delete of a dirty file: local version to lost+found, absence imported", dirty, RemoteDeleted{},
			State{Gen: 4, CleanGen: 4, ContentGen: 4, LastUsed: at(5 * sec)},
			append([]Action{MoveToLostFound{Gen: 4, DataLocal: true}}, importOf(Version{}, 0, false)...)},
		{"C3", "a new file is not in conflict with the absence of its key", newFile, RemoteDeleted{}, newFile, nil},
		{"C3 C4", "upload precondition failed: lost+found, then the bucket's version", uploading,
			UploadFailed{Gen: 4, Conflict: true, Remote: vRem, RemoteSize: 7},
			with(dirty, func(s *State) { s.Base, s.CleanGen, s.DirtySince, s.Data, s.Size = vRem, 4, time.Time{}, NoData, 7 }),
			append([]Action{MoveToLostFound{Gen: 4, DataLocal: true}}, importOf(vRem, 7, true)...)},
		{"C3", "a precondition failure over an unchanged base is retried, not a conflict", uploading,
			UploadFailed{Gen: 4, Conflict: true, Remote: vBase, RemoteSize: 10}, dirty, nil},
		{"C3", "a precondition failure over our own lost write takes it as the base and retries", uploading,
			UploadFailed{Gen: 4, Remote: vRem, RemoteSize: 20, Own: true}, with(dirty, func(s *State) { s.Base = vRem }), nil},
		{"C3", "a remote change during an upload is held for its result", uploading, RemoteChanged{Version: vUp, Size: 20},
			with(uploading, func(s *State) { s.RemoteSeen, s.Remote = true, vUp }), nil},
		{"C3", "a held change that was our own upload is dropped", with(uploading, func(s *State) { s.RemoteSeen, s.Remote = true, vUp }),
			UploadSucceeded{Gen: 4, Version: vUp}, with(dirty, func(s *State) { s.Base, s.CleanGen, s.DirtySince = vUp, 4, time.Time{} }), nil},
		{"C3", "a held change that was not ours is checked again", with(uploading, func(s *State) { s.RemoteSeen, s.Remote = true, vRem }),
			UploadSucceeded{Gen: 4, Version: vUp}, with(dirty, func(s *State) { s.Base, s.CleanGen, s.DirtySince = vUp, 4, time.Time{} }),
			[]Action{CheckRemote{}}},
		{"C6", "local delete over a remote change is dropped: the bucket's version reappears", tombstone, RemoteChanged{Version: vRem, Size: 7},
			with(clean, func(s *State) { s.Gen, s.CleanGen, s.Base, s.Data, s.Size = 4, 4, vRem, NoData, 7 }), importOf(vRem, 7, false)},
		{"C6", "delete precondition failed: the bucket's version reappears, nothing to lost+found",
			with(tombstone, func(s *State) { s.InFlight, s.InFlightGen = OpDelete, 4 }), DeleteFailed{Gen: 4, Conflict: true, Remote: vRem, RemoteSize: 7},
			with(clean, func(s *State) { s.Gen, s.CleanGen, s.Base, s.Data, s.Size = 4, 4, vRem, NoData, 7 }), importOf(vRem, 7, false)},
		{"C6", "local and remote delete agree", tombstone, RemoteDeleted{}, State{Gen: 4, CleanGen: 4, ContentGen: 2, LastUsed: t0}, nil},

		// Expiry (Y10).
		{"Y10", "clean data unused for ExpireAfter is dropped, metadata stays", clean, Tick{Now: at(30 * day)},
			with(clean, func(s *State) { s.Data = ExpiredData }), []Action{DropData{}}},
		{"Y10", "not a second early", clean, Tick{Now: at(30*day - sec)}, clean, nil},
		{"Y10", "a read restarts the clock", clean, Read{At: at(day)}, with(clean, func(s *State) { s.LastUsed = at(day) }), nil},
		{"Y10", "dirty data is uploaded, never expired", with(dirty, func(s *State) { s.LastUsed = t0.Add(-60 * day) }), Tick{Now: at(65 * sec)},
			with(uploading, func(s *State) { s.LastUsed = t0.Add(-60 * day) }), []Action{StartUpload{Gen: 4, Base: vBase, IfMatch: vBase.ETag}}},
		{"Y10", "eviction under pressure skips the age, never the safety", clean, DataExpired{},
			with(clean, func(s *State) { s.Data = ExpiredData }), []Action{DropData{}}},
		{"Y10", "eviction of dirty data is refused", dirty, DataExpired{}, dirty, nil},
		{"Y10", "the next read fetches the base again", with(clean, func(s *State) { s.Data = ExpiredData }),
			DataImported{Version: vBase, At: at(40 * day)}, with(clean, func(s *State) { s.LastUsed = at(40 * day) }), nil},
		{"C2", "bytes of a version that is no longer the base are not imported", with(clean, func(s *State) { s.Data = NoData }),
			DataImported{Version: vRem, At: at(sec)}, with(clean, func(s *State) { s.Data = NoData }), nil},

		// Lost+found (C5).
		{"C5", "lost+found is never uploaded after a change", lostFound, LocalWrite{At: at(sec), Size: 4},
			with(lostFound, func(s *State) { s.Gen, s.CleanGen, s.ContentGen, s.Size, s.LastUsed = 1, 1, 1, 4, at(sec) }), nil},
		{"C5", "lost+found data never expires", lostFound, Tick{Now: at(365 * day)}, lostFound, nil},
		{"C5", "lost+found data is never evicted", lostFound, DataExpired{}, lostFound, nil},
		{"C5", "lost+found ignores the bucket", lostFound, RemoteChanged{Version: vRem, Size: 1}, lostFound, nil},
		{"C5", "a lost+found file may be deleted", lostFound, LocalDelete{At: at(sec)},
			State{LostFound: true, Gen: 1, CleanGen: 1, LastUsed: t0}, nil},
	}
	for _, tt := range tests {
		if err := tt.s.Validate(); err != nil {
			t.Errorf("[%s] %s: invalid start state: %v", tt.rule, tt.name, err)
		}
		got, acts := Next(tt.s, tt.e, p)
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("[%s] %s:\n got  %+v\n want %+v", tt.rule, tt.name, got, tt.want)
		}
		if !reflect.DeepEqual(acts, tt.acts) {
			t.Errorf("[%s] %s: actions\n got  %#v\n want %#v", tt.rule, tt.name, acts, tt.acts)
		}
		if err := got.Validate(); err != nil {
			t.Errorf("[%s] %s: invalid result: %v", tt.rule, tt.name, err)
		}
	}
}

func TestDueAt(t *testing.T) {
	p := DefaultParams()
	tests := []struct {
		rule, name string
		s          State
		want       time.Time
	}{
		{"Y5", "clean: nothing due", clean, time.Time{}},
		{"Y5", "dirty: first change plus the window", dirty, at(65 * sec)},
		{"Y5", "in flight, no newer change: nothing due", uploading, time.Time{}},
		{"Y5", "in flight with a newer change: that change plus the window", changedDuring, at(130 * sec)},
		{"C5", "lost+found: never", lostFound, time.Time{}},
	}
	for _, tt := range tests {
		if got := DueAt(tt.s, p); !got.Equal(tt.want) {
			t.Errorf("[%s] %s: DueAt = %v, want %v", tt.rule, tt.name, got, tt.want)
		}
	}
	if UploadDue(changedDuring, at(day), p) {
		t.Errorf("[Y5] UploadDue while an upload is in flight")
	}
	if !UploadDue(dirty, at(65*sec), p) || UploadDue(dirty, at(65*sec-1), p) {
		t.Errorf("[Y5] UploadDue is not exactly from DueAt")
	}
}

func TestMayExpireParams(t *testing.T) {
	p := DefaultParams()
	p.ExpireAfter = -1
	if MayExpire(clean, at(1000*day), p) {
		t.Errorf("[Y10] negative ExpireAfter must disable expiry")
	}
	p.ExpireAfter = 0
	if !MayExpire(clean, t0, p) {
		t.Errorf("[Y10] zero ExpireAfter expires clean data at once")
	}
}

func TestValidateRejects(t *testing.T) {
	bad := map[string]State{
		"deleted and existing":   with(tombstone, func(s *State) { s.Exists = true }),
		"in flight while clean":  with(clean, func(s *State) { s.InFlight, s.InFlightGen = OpUpload, 3 }),
		"lost+found dirty":       with(lostFound, func(s *State) { s.Gen = 1 }),
		"held change, no op":     with(dirty, func(s *State) { s.RemoteSeen = true }),
		"data at an absent path": {Data: LocalData},
		"clean gen ahead of gen": {Gen: 1, CleanGen: 2},
	}
	for name, s := range bad {
		if s.Validate() == nil {
			t.Errorf("Validate accepted %s: %+v", name, s)
		}
	}
}
