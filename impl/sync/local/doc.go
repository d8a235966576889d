// Package local is the durable local layer of sync mode (--sync-dir DIR, rules Y and C of
// docs/SEMANTICS.md, invariants of shared/design/SYNC.md). It keeps, for one bucket and prefix,
// every file, directory and symlink with its attributes and its syncrule.State, the file data,
// and the queue of bucket operations owed. It does no network I/O and reads no clock of its own
// (Options.Clock); the engine drives it with syncrule.Next (Apply), Snapshot, MarkUploaded,
// Pending and Done, and the FUSE layer calls the file operations.
//
// # Layout of DIR
//
//	meta.db  bbolt: meta (fsid, bucket, prefix, format), nodes (path -> record, in the
//	         binary form of codec.go; JSON in sync dirs made before format 3), ids (data id
//	         -> the paths of the records with that id: one, or a linked file's names), dirs
//	         (exactly the visible directories: a directory's subdirectories are counted in it,
//	         and a lookup's parent is checked in it), queue (op id ->
//	         Op), uploads (the multipart uploads the engine has open)
//	data/    one file per file, named by its records' id (16 hex digits), so a rename never
//	         touches data; the names of a linked file (Link) share theirs
//	snap/    upload snapshots, unlinked as soon as they are made
//	lock     flock'd while a Layer is open; holds the owner's pid for the error message
//
// A node key is dir + NUL + name: a directory's children are one contiguous key range in byte
// order of their names (K6), and its descendants are two ranges (dir+NUL, dir+"/").
//
// # Why nothing closed is lost (the durability argument)
//
// bbolt commits a transaction by writing its pages, fsync'ing, then writing and fsync'ing the
// meta page; a crash leaves the previous or the new state, never a mix. Everything below follows
// from ordering data-file fsyncs against those commits.
//
//  1. Intent before data. BeginWrite commits syncrule.LocalWrite (generation+1, dirty) before
//     it returns a handle, so any byte that reaches a data file belongs to a generation already
//     durably dirty. A snapshot seals the generation; the next write through any handle
//     commits a new one first. Create commits the record before making the data file (Open
//     recreates an empty one lost in between).
//  2. Closed means durable. Sync and Close fsync the data file, then commit size and mtime.
//     After a crash between the two the record is dirty (1), and Open takes the data file's size.
//  3. Snapshots. Snapshot syncs, then clones (FICLONE, else a copy) the data file into an
//     unlinked file while holding the file's lock, which every writer takes: later writes
//     cannot reach it, and a crash leaves no snapshot to clean.
//  4. Clean only after the bucket has it. MarkUploaded commits base and clean-generation in
//     one transaction, and only for the current generation; an older one records the base and
//     stays dirty.
//  5. Queue. Ops are written in the transaction that makes them owed (the state change in
//     Apply, the moved records in Rename), so an op is never attempted before it is durable,
//     and a directory rename is all-or-nothing locally with every copy+delete queued.
//  6. No dirty data dropped. Data files are removed only after the commit that stops
//     referring to them (Remove, Rename over a file, Expire); a crash in between leaves an
//     orphan Open deletes. Expire asks syncrule.MayExpire and refuses dirty or open files.
//  7. Recovery is the normal start. Open runs the same reconciliation every time: decode and
//     Validate every record (a bad one makes Open refuse: ErrCorrupt, with how to recover
//     keeping the data files), settle data files as in recover, list Dirty and Pending.
//
// Directory entries for new data files are fsync'd before a commit records bytes in them:
// PutData and copies sync data/ themselves; Create does not wait, and the first Sync or Close
// with bytes to keep syncs data/ once for every file made since the last time (entrySync), so
// an entry lost by a crash is that of an empty file, which Open recreates. Unlinks need not
// be, since an unlink lost by a crash only leaves an orphan for Open to remove.
//
// Group commit. The commits programs wait on (Create, BeginWrite, a new intent, Sync and
// Close) may share one bbolt transaction with those of other programs waiting at the same
// moment (committer): each is idempotent, and one that fails is taken out and the rest run
// again, so each change's result is what it would have been alone in that order.
//
// Importing from the bucket (import.go) adds no data path of its own: ImportListing commits
// clean, metadata-only records (no data file exists yet, nothing dirty can be shadowed since
// only names with no record are added); PutData brings bytes in as above; SetRemoteAttr and
// Touch change only clean records' attributes and last use, and SetRemoteAttr removes a data
// file only after the commit that turns its record into a symlink.
//
// # Conflicts (conflict.go)
//
// Apply carries out the rule's MoveToLostFound and ImportRemote in the transaction that
// records the conflict, and removes the failed op from the queue in the same one: the dirty
// record moves to /<LostFoundDir>/<id>-<base> with its id, so its data file (named by id) and
// any open handle follow it untouched (a name of a linked file, whose other names keep the
// id, takes a copy under a new id instead), and the path gets a clean metadata-only record of the
// bucket's version, or none. A crash leaves either the dirty version at its path with its op
// queued, or all of it done (invariant 6 of SYNC.md). Lost+found records are clean (never
// uploaded, C5) yet the only copy: recovery treats their data files as it treats dirty ones
// (their size wins; a missing non-empty one is corruption), and MayExpire never drops them.
// ApplyRemote is the same for a poller's RemoteChanged/RemoteDeleted; a clean file's stale
// data file is removed only after the commit (6 above).
//
// # Not here yet
//
// A directory's marker is known only once the directory itself is listed (ImportDir): until
// then an imported directory has a zero base and default attributes.
//
// # Renames before their copy ran
//
// A rename's destination names its queued copy (PendingCopy) until the copy's result is
// recorded. If the destination moves on meanwhile (renamed again, removed, replaced), the
// copy from or delete of its key is queued chained to that copy (Op.ChainOf) in the same
// transaction, and CopyDone gives it the copy's version; a queued op is never rewritten in
// any other way, so an op the engine is running is never changed under it (the chained op
// shares the key, so it cannot start before the copy is done).
package local
