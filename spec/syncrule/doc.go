// Package syncrule is the executable specification of sync mode for one path (rules Y1-Y11 and
// C1-C7 of docs/SEMANTICS.md, invariants of the sync design). The sync engine (impl/sync)
// consults Next for every decision about a file: when to upload, when a remote change is a
// conflict, what goes to lost+found, when data may expire. Property tests check the rules here,
// where they are cheap to explore, instead of through a mount.
//
// It owns the decisions, not their execution. It must not do I/O, start goroutines, read a
// clock (time is always a parameter) or import impl/ or mount/. It knows one path at a time:
// directories (Y8), renames (Y9: here a delete at the old path and a write at the new one) and
// the durable queue are the engine's; so are retry pacing and open handles (the engine must not
// drop the data of an open file).
//
// # States of a path
//
// A State is a record, not an enum; the names below are its shapes.
//
//	absent     no file, nothing owed to the bucket (the zero State)
//	clean      file, Gen == CleanGen: the bucket holds it as Base; data local, none or expired
//	dirty      file with changes the bucket lacks, since DirtySince
//	tombstone  deleted locally, DeleteObject of Base owed (Deleted)
//	in flight  dirty or tombstone with one operation running for snapshot InFlightGen
//	lost+found a file moved by a conflict; never uploaded, never expired (C5)
//
// # Transitions (Y = write-back, C = conflicts)
//
//	absent    --LocalWrite---------------------------------> dirty (new: If-None-Match, C3)
//	absent    --RemoteChanged------------------------------> clean (import, Y1)
//	clean     --LocalWrite---------------------------------> dirty
//	clean     --LocalDelete--------------------------------> tombstone
//	clean     --RemoteChanged / RemoteDeleted--------------> clean / absent (ImportRemote, C2)
//	clean     --Tick, unused for ExpireAfter---------------> clean, data expired (DropData, Y10)
//	dirty     --Tick at DueAt / Flush----------------------> in flight (StartUpload, Y5, Y6)
//	dirty     --LocalDelete--------------------------------> tombstone, or absent if never uploaded
//	dirty     --RemoteChanged / RemoteDeleted--------------> clean / absent (MoveToLostFound, ImportRemote, C3, C4)
//	tombstone --Tick at DueAt / Flush----------------------> in flight (StartDelete, Y7)
//	tombstone --LocalWrite---------------------------------> dirty (the delete is folded into one PUT)
//	tombstone --RemoteChanged------------------------------> clean (the delete is dropped, C6)
//	in flight --UploadSucceeded / DeleteSucceeded(InFlightGen)--> clean / absent, or dirty if changed since the snapshot (Y5)
//	in flight --UploadFailed / DeleteFailed, retryable-----> dirty or tombstone, due at once
//	in flight --UploadFailed / DeleteFailed, conflict------> as dirty/tombstone --Remote*--> (C3, C4, C6)
//	in flight --RemoteChanged / RemoteDeleted--------------> in flight, change held until the result
//
// A remote change seen while an operation is in flight is held, not acted on: a poll or an
// event notification may show this mount's own write before its response arrives, and calling
// that a conflict would send every such file to lost+found. The conditional operation decides
// instead: its precondition fails if the bucket changed (a conflict, C3), and if it succeeds a
// held change that is not our own write is checked again (CheckRemote).
//
// # Why no version is lost (C7)
//
// Data leaves a path only by DropData (clean, nothing in flight: the bucket has these bytes),
// by LocalDelete (the user's choice), or by ImportRemote; an ImportRemote over a dirty file is
// always preceded, in the same action list, by MoveToLostFound of its current generation. A
// file is clean only after the bucket acknowledged the snapshot of its current generation.
package syncrule
