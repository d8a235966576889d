package syncrule

import "time"

// Next is the rule for one event at one path: the new state and what the engine must do, in
// order. It never mutates its argument. An event that does not apply to the state (a result for
// an operation that is not the one in flight, a read of an absent file, a remote change to a
// lost+found path) returns the state unchanged and no actions: such events are duplicates or
// late reports, and acting on them could only undo a newer decision.
func Next(s State, e Event, p Params) (State, []Action) {
	switch e := e.(type) {
	case LocalWrite:
		return localWrite(s, e), nil
	case LocalDelete:
		return localDelete(s, e.At), nil
	case Read:
		if s.Exists {
			s.LastUsed = later(s.LastUsed, e.At)
		}
		return s, nil
	case Close:
		return s, nil
	case Tick:
		if UploadDue(s, e.Now, p) {
			return start(s)
		}
		if MayExpire(s, e.Now, p) {
			return drop(s)
		}
		return s, nil
	case Flush:
		if canStart(s) {
			return start(s)
		}
		return s, nil
	case UploadSucceeded:
		if s.InFlight != OpUpload || e.Gen != s.InFlightGen || e.Version.IsZero() {
			return s, nil
		}
		return succeeded(s, e.Version)
	case UploadFailed:
		if s.InFlight != OpUpload || e.Gen != s.InFlightGen {
			return s, nil
		}
		if e.Own && !e.Remote.IsZero() {
			s.Base = e.Remote // our own lost write: the next upload replaces it
			return failed(s, false, Version{}, 0, p)
		}
		return failed(s, e.Conflict, e.Remote, e.RemoteSize, p)
	case DeleteSucceeded:
		if s.InFlight != OpDelete || e.Gen != s.InFlightGen {
			return s, nil
		}
		return succeeded(s, Version{})
	case DeleteFailed:
		if s.InFlight != OpDelete || e.Gen != s.InFlightGen {
			return s, nil
		}
		return failed(s, e.Conflict, e.Remote, e.RemoteSize, p)
	case RemoteChanged:
		return remote(s, e.Version, e.Size, p)
	case RemoteDeleted:
		return remote(s, Version{}, 0, p)
	case DataImported:
		// Only the base's bytes may become the local data: anything else is a fetch that raced
		// with a remote change (C2), and a file with local data already has newer bytes.
		if !s.Exists || s.LostFound || s.Data == LocalData || s.Base.IsZero() || !e.Version.Same(s.Base) {
			return s, nil
		}
		s.Data = LocalData
		s.LastUsed = later(s.LastUsed, e.At)
		return s, nil
	case DataExpired:
		if mayDrop(s) {
			return drop(s)
		}
		return s, nil
	}
	return s, nil
}

// change records one local change at t. The window of Y5 starts at the first change the bucket
// does not have; while an operation is in flight, the next round's window starts at the first
// change after its snapshot.
func (s *State) change(t time.Time) {
	if !s.Dirty() {
		s.DirtySince = t
	}
	if s.InFlight != OpNone && s.Gen == s.InFlightGen {
		s.PendingSince = t
	}
	s.Gen++
}

func localWrite(s State, e LocalWrite) State {
	created := !s.Exists
	s.change(e.At)
	if s.LostFound {
		// Lost+found files may be changed but are never uploaded (C5): nothing to be dirty for.
		s.CleanGen, s.DirtySince = s.Gen, time.Time{}
	}
	s.Exists, s.Deleted = true, false
	if created || !e.MetadataOnly {
		s.Data, s.ContentGen, s.Size = LocalData, s.Gen, e.Size
	}
	s.LastUsed = later(s.LastUsed, e.At)
	return s
}

func localDelete(s State, t time.Time) State {
	if !s.Exists {
		return s
	}
	if s.LostFound {
		s.Gen++
		return absent(s)
	}
	s.change(t)
	s.Exists, s.Deleted, s.Data, s.Size = false, true, NoData, 0
	return settle(s)
}

// settle turns a tombstone with nothing to delete into an absent path: a file the bucket never
// had from us, deleted with no upload of it in flight, leaves nothing to do.
func settle(s State) State {
	if s.Deleted && s.Base.IsZero() && s.InFlight == OpNone {
		return absent(s)
	}
	return s
}

func absent(s State) State {
	return State{Gen: s.Gen, CleanGen: s.Gen, ContentGen: s.ContentGen, LastUsed: s.LastUsed, LostFound: s.LostFound}
}

// start begins the write-back of the current generation: the snapshot is taken now (Y6), and
// its precondition is the base the previous operation left (C3, C6).
func start(s State) (State, []Action) {
	s.InFlightGen, s.PendingSince = s.Gen, time.Time{}
	if s.Deleted {
		s.InFlight = OpDelete
		return s, []Action{StartDelete{Gen: s.Gen, Base: s.Base, IfMatch: s.Base.ETag}}
	}
	s.InFlight = OpUpload
	a := StartUpload{Gen: s.Gen, Base: s.Base}
	if s.Base.IsZero() {
		a.IfNoneMatch = "*"
	} else {
		a.IfMatch = s.Base.ETag
		a.MetadataOnly = s.ContentGen <= s.CleanGen
	}
	return s, []Action{a}
}

// succeeded records that the bucket now holds snapshot InFlightGen as v (zero after a delete).
// The file is clean only if nothing changed since the snapshot (SYNC.md, invariant 4).
func succeeded(s State, v Version) (State, []Action) {
	s.Base, s.CleanGen, s.InFlight, s.InFlightGen = v, s.InFlightGen, OpNone, 0
	s.DirtySince, s.PendingSince = s.PendingSince, time.Time{}
	if !s.Dirty() {
		s.DirtySince = time.Time{}
	}
	acts := takeSeen(&s, v)
	if s.Deleted && !s.Dirty() {
		s = absent(s) // the delete went through and nothing happened since
	}
	return settle(s), acts
}

// failed ends the operation in flight. A precondition failure is a conflict only if the bucket
// really holds something other than the base (C3): otherwise the object changed and changed
// back, and the operation is simply retried.
func failed(s State, conflict bool, v Version, size int64, p Params) (State, []Action) {
	s.InFlight, s.InFlightGen, s.PendingSince = OpNone, 0, time.Time{}
	if conflict && !v.Same(s.Base) {
		s.RemoteSeen, s.Remote = false, Version{}
		return resolve(s, v, size, p)
	}
	acts := takeSeen(&s, s.Base)
	return settle(s), acts
}

// takeSeen clears a remote change held during the operation that just ended. If it was what the
// bucket now holds by our own doing, it was our write; anything else may be stale or newer, and
// only a fresh read can tell which.
func takeSeen(s *State, now Version) []Action {
	seen, held := s.Remote, s.RemoteSeen
	s.RemoteSeen, s.Remote = false, Version{}
	if !held || seen.Same(now) {
		return nil
	}
	return []Action{CheckRemote{}}
}

// remote applies a poll's or notification's view of the key (C2, C3, C6).
func remote(s State, v Version, size int64, p Params) (State, []Action) {
	if s.LostFound || v.Same(s.Base) {
		return s, nil
	}
	if s.InFlight != OpNone {
		s.RemoteSeen, s.Remote = true, v
		return s, nil
	}
	if s.Dirty() {
		return resolve(s, v, size, p)
	}
	return importRemote(s, v, size, p)
}

// resolve is the conflict rule: the bucket wins (C4). A local file goes to lost+found first; a
// local delete is simply dropped (C6), there is nothing local to keep.
func resolve(s State, v Version, size int64, p Params) (State, []Action) {
	var acts []Action
	if s.Exists {
		acts = append(acts, MoveToLostFound{Gen: s.Gen, DataLocal: s.Data == LocalData})
	}
	s, imp := importRemote(s, v, size, p)
	return s, append(acts, imp...)
}

// importRemote makes the path show v, clean, with no local data (C2). Fresh bytes are fetched
// for small objects that are new to the mount (Y1) or whose data was local: an expired file
// stays expired until it is read (Y10).
func importRemote(s State, v Version, size int64, p Params) (State, []Action) {
	hadFile := s.Exists
	fetch := (s.Absent() || s.Data == LocalData) && size < p.ImportThreshold
	if v.IsZero() {
		s = absent(s)
		if !hadFile {
			return s, nil // a tombstone meets the remote delete it asked for
		}
		return s, []Action{ImportRemote{}, InvalidateKernelCache{}}
	}
	s.Exists, s.Deleted, s.Data, s.Size = true, false, NoData, size
	s.Base, s.CleanGen, s.DirtySince = v, s.Gen, time.Time{}
	return s, []Action{ImportRemote{Version: v, Size: size, FetchData: fetch}, InvalidateKernelCache{}}
}

func drop(s State) (State, []Action) {
	s.Data = ExpiredData
	return s, []Action{DropData{}}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
