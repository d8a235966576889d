package syncrule_test

import (
	"reflect"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/mount-s3/mount-s3/spec/internal/rapidsetup"

	. "github.com/mount-s3/mount-s3/spec/syncrule"
)

// minChecks is the least number of cases every property below is checked with.
const minChecks = 1000

// TestMain runs every property with at least minChecks cases (rapidsetup).
func TestMain(m *testing.M) { rapidsetup.Main(m, minChecks) }

// Every state Next produces passes Validate, and operations start one at a time with the
// precondition of C3 / C6.
func TestPropStatesValidAndOperationsConditional(t *testing.T) {
	property(t, func(t *rapid.T, st step) {
		if err := st.post.Validate(); err != nil {
			t.Fatalf("invalid state after %#v on %+v: %v\n%+v", st.e, st.pre, err, st.post)
		}
		for _, a := range st.acts {
			switch a := a.(type) {
			case StartUpload:
				if st.pre.InFlight != OpNone || a.Gen != st.pre.Gen || st.post.InFlightGen != a.Gen {
					t.Fatalf("[Y6] upload %+v started from %+v", a, st.pre)
				}
				if st.pre.Base.IsZero() != (a.IfNoneMatch == "*" && a.IfMatch == "") || !st.pre.Base.IsZero() && a.IfMatch != st.pre.Base.ETag {
					t.Fatalf("[C3] upload %+v has the wrong precondition for base %+v", a, st.pre.Base)
				}
			case StartDelete:
				if st.pre.InFlight != OpNone || st.pre.Base.IsZero() || a.IfMatch != st.pre.Base.ETag {
					t.Fatalf("[C6] delete %+v started from %+v", a, st.pre)
				}
			}
		}
	})
}

// A remote change held during an operation is never silently forgotten (C2): when it is
// cleared it is what the path is now synced with (this mount's own write), or a fresher read of
// the bucket replaced it (a failed precondition), or the engine is asked to look again.
func TestPropHeldRemoteChangeNotForgotten(t *testing.T) {
	property(t, func(t *rapid.T, st step) {
		if !st.pre.RemoteSeen || st.post.RemoteSeen || has[CheckRemote](st.acts) || has[ImportRemote](st.acts) {
			return
		}
		switch e := st.e.(type) {
		case UploadFailed:
			if e.Conflict {
				return // the engine read the bucket after the failed precondition: newer than the held change
			}
		case DeleteFailed:
			if e.Conflict {
				return
			}
		}
		if !st.pre.Remote.Same(st.post.Base) {
			t.Fatalf("[C2] held %+v forgotten by %#v", st.pre.Remote, st.e)
		}
	})
}

// (1) No dirty data is ever expired: DropData only for clean, idle, local, non-lost+found data,
// and local bytes of a dirty file leave only by a local delete or a move to lost+found.
func TestPropNoDirtyDataExpired(t *testing.T) {
	property(t, func(t *rapid.T, st step) {
		pre := st.pre
		if has[DropData](st.acts) && (pre.Dirty() || pre.InFlight != OpNone || pre.LostFound || pre.Data != LocalData || !pre.Exists) {
			t.Fatalf("[Y10] DropData on %+v for %#v", pre, st.e)
		}
		_, deleted := st.e.(LocalDelete)
		if pre.Dirty() && pre.Data == LocalData && st.post.Data != LocalData && !deleted && !has[MoveToLostFound](st.acts) {
			t.Fatalf("[Y4] dirty data of %+v lost by %#v: %+v", pre, st.e, st.post)
		}
	})
}

// (2) A dirty file is always eventually due, exactly at the end of its window (Y5).
func TestPropDirtyAlwaysDue(t *testing.T) {
	property(t, func(t *rapid.T, st step) {
		s, p := st.post, st.p
		if s.Dirty() && s.InFlight == OpNone && !s.LostFound {
			d := DueAt(s, p)
			if !UploadDue(s, d, p) || d.After(s.DirtySince.Add(p.WriteBackDelay)) {
				t.Fatalf("[Y5] %+v: DueAt %v not due or after dirty-since + window", s, d)
			}
			if UploadDue(s, d.Add(-1), p) {
				t.Fatalf("[Y5] %+v due before its window ends at %v", s, d)
			}
			if _, acts := Next(s, Tick{Now: d}, p); len(acts) != 1 || !has[StartUpload](acts) && !has[StartDelete](acts) {
				t.Fatalf("[Y5] Tick at DueAt on %+v gives %#v", s, acts)
			}
		}
		// The window never restarts: while the file stays dirty, only a completed operation
		// moves its start (to the first change after that operation's snapshot).
		_, up := st.e.(UploadSucceeded)
		_, del := st.e.(DeleteSucceeded)
		if st.pre.Dirty() && s.Dirty() && !s.DirtySince.Equal(st.pre.DirtySince) && !up && !del {
			t.Fatalf("[Y5] %#v moved the window of %+v to %v", st.e, st.pre, s.DirtySince)
		}
		if s.InFlight != OpNone && s.Gen > s.InFlightGen && DueAt(s, p).IsZero() {
			t.Fatalf("[Y5] change after the snapshot of %+v is never due", s)
		}
	})
}

// (3) A change made during an upload leaves the file dirty after the older snapshot succeeded,
// due when it was due before the result.
func TestPropChangeDuringUploadStaysDirty(t *testing.T) {
	property(t, func(t *rapid.T, st step) {
		e, ok := st.e.(UploadSucceeded)
		pre := st.pre
		if !ok || pre.InFlight != OpUpload || e.Gen != pre.InFlightGen || pre.Gen == e.Gen {
			return
		}
		if !st.post.Dirty() || st.post.CleanGen != e.Gen || !DueAt(st.post, st.p).Equal(DueAt(pre, st.p)) {
			t.Fatalf("[Y5] %+v after %#v: %+v", pre, e, st.post)
		}
	})
}

// (4) Expiry never removes metadata.
func TestPropExpiryKeepsMetadata(t *testing.T) {
	property(t, func(t *rapid.T, st step) {
		_, evict := st.e.(DataExpired)
		if !evict && !has[DropData](st.acts) {
			return
		}
		pre, post := st.pre, st.post
		keep := func(s State) State { s.Data = NoData; return s }
		if !reflect.DeepEqual(keep(pre), keep(post)) || has[DropData](st.acts) && post.Data != ExpiredData {
			t.Fatalf("[Y10] %#v changed more than the data: %+v -> %+v", st.e, pre, post)
		}
	})
}

// (5) Every version a program closed ends in the bucket or in lost+found (C7): a conflict on a
// dirty file always moves it to lost+found, the owed version never silently disappears, and
// once the engine makes progress the file ends clean with nothing owed.
func TestPropNoClosedVersionLost(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var owed uint64 // the latest closed generation neither in the bucket nor in lost+found
		check := func(t *rapid.T, st step) {
			pre, post := st.pre, st.post
			move := index[MoveToLostFound](st.acts)
			conflict := false
			switch e := st.e.(type) {
			case RemoteChanged:
				conflict = pre.InFlight == OpNone && !e.Version.Same(pre.Base)
			case RemoteDeleted:
				conflict = pre.InFlight == OpNone && !pre.Base.IsZero()
			case UploadFailed:
				conflict = pre.InFlight == OpUpload && e.Gen == pre.InFlightGen && e.Conflict && !e.Remote.Same(pre.Base)
			case DeleteFailed:
				conflict = pre.InFlight == OpDelete && e.Gen == pre.InFlightGen && e.Conflict && !e.Remote.Same(pre.Base)
			case UploadSucceeded:
				if pre.InFlight == OpUpload && e.Gen == pre.InFlightGen {
					if e.Gen >= owed {
						owed = 0
					}
					if e.Gen == pre.Gen && post.Dirty() {
						t.Fatalf("[Y6] success of the latest snapshot left %+v dirty", post)
					}
				}
			case LocalDelete:
				if pre.Exists {
					owed = 0 // the program threw this version away itself
				}
			}
			if move >= 0 && !conflict {
				t.Fatalf("[C3] %#v on %+v moved to lost+found without a remote change", st.e, pre)
			}
			if conflict && pre.Exists && pre.Dirty() && !pre.LostFound && move < 0 {
				t.Fatalf("[C4] conflict %#v on dirty %+v without MoveToLostFound: %#v", st.e, pre, st.acts)
			}
			if has[ImportRemote](st.acts) && pre.Exists && pre.Dirty() && (move < 0 || move > index[ImportRemote](st.acts)) {
				t.Fatalf("[C4] import over dirty %+v without saving it first: %#v", pre, st.acts)
			}
			if move >= 0 {
				if g := st.acts[move].(MoveToLostFound).Gen; g != pre.Gen || !pre.Exists {
					t.Fatalf("[C4] moved gen %d of %+v", g, pre)
				} else if g >= owed {
					owed = 0
				}
			}
			if _, ok := st.e.(Close); ok && post.Exists && post.Dirty() && !post.LostFound {
				owed = post.Gen
			}
			if owed != 0 && !(post.Exists && post.Dirty() && post.Gen >= owed && !post.LostFound) {
				t.Fatalf("[C7] closed gen %d lost by %#v: %+v -> %+v", owed, st.e, pre, post)
			}
		}
		m := run(t, startGen.Draw(t, "start"), check)
		m.quiesce(t, check)
		if m.s.Dirty() || m.s.InFlight != OpNone || owed != 0 {
			t.Fatalf("[C7] never synced: %+v, owed gen %d", m.s, owed)
		}
	})
}

// (6) After a conflict the bucket's version is at the path: the move to lost+found is followed
// by the import in the same action list, and the path is clean at the bucket's version.
func TestPropBucketWinsAfterConflict(t *testing.T) {
	property(t, func(t *rapid.T, st step) {
		move, imp := index[MoveToLostFound](st.acts), index[ImportRemote](st.acts)
		if move >= 0 && (imp < move || len(st.acts) != 3 || st.acts[2] != Action(InvalidateKernelCache{})) {
			t.Fatalf("[C4] %#v on %+v: %#v", st.e, st.pre, st.acts)
		}
		if imp < 0 {
			return
		}
		v := st.acts[imp].(ImportRemote).Version
		var want Version
		switch e := st.e.(type) {
		case RemoteChanged:
			want = e.Version
		case UploadFailed:
			want = e.Remote
		case DeleteFailed:
			want = e.Remote
		}
		if v != want {
			t.Fatalf("[C2 C4] %#v imported %+v", st.e, v)
		}
		post := st.post
		if post.Dirty() || post.InFlight != OpNone || post.Exists == v.IsZero() || !post.Base.Same(v) || post.Data == LocalData {
			t.Fatalf("[C2 C4] import of %+v left %+v", v, post)
		}
	})
}

// (7) Nothing in lost+found is ever uploaded, deleted from the bucket, expired or replaced (C5).
func TestPropLostFoundNeverUploaded(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		run(t, lostFound, func(t *rapid.T, st step) {
			if len(st.acts) != 0 || !st.post.LostFound || st.post.Dirty() || DueAt(st.post, st.p) != (time.Time{}) {
				t.Fatalf("[C5] %#v on %+v: %+v, %#v", st.e, st.pre, st.post, st.acts)
			}
		})
	})
}

// (8) An upload success for a snapshot older than the current data never makes the file clean
// (SYNC.md, invariant 4).
func TestPropStaleSuccessNeverCleans(t *testing.T) {
	property(t, func(t *rapid.T, st step) {
		if e, ok := st.e.(UploadSucceeded); ok && st.pre.Dirty() && e.Gen != st.pre.Gen && !st.post.Dirty() {
			t.Fatalf("[Y6] %#v made %+v clean", e, st.pre)
		}
	})
}
