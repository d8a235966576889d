// Package watch is the remote-change watcher of sync mode (rule C2 of docs/SEMANTICS.md): it
// finds what other writers did to the bucket and feeds it to the local layer as
// syncrule.RemoteChanged and syncrule.RemoteDeleted, whose consequences (import, conflict,
// lost+found: C2-C6) the layer decides with syncrule.Next. It decides no rule itself.
//
// # Two sources
//
// Polling (--poll-interval, default 10 s, 0 disables): every interval, one delimited
// ListObjectsV2 (all pages) of the key prefix of every directory the layer has imported
// (Info.Imported), compared with the layer's records of that directory. The cost grows with the
// imported directories, never with the bucket: a directory nobody listed is imported by its
// first access anyway (Y1). The lost+found directory (C5: local only) is never polled.
//
// Event notifications (--events-addr, off by default): Handler accepts the S3 event JSON that
// AWS (S3 to SNS, SQS or a webhook forwarder) and MinIO (webhook target) POST. Every key is
// confirmed with a HEAD before it is acted on, because a notification may be stale, duplicated
// or out of order; the HEAD's answer, not the notification, is what is fed to the layer. So a
// forged notification can cause at most a HEAD of a key inside the mount prefix. The handler
// answers at once; the keys are processed by a few workers from a bounded, de-duplicated queue
// (a full queue answers 503, so the sender retries; the next poll also catches up).
//
// # What is compared (one directory)
//
//   - a file or symlink record whose object's ETag is not its base (syncrule.Version.Same: a
//     listing has no version ids), or whose base is zero while an object exists: RemoteChanged;
//   - a record whose base is non-zero and whose object is absent: RemoteDeleted;
//   - names with no record at all, and new subdirectories, go through Sink.ImportDir, the same
//     call the first listing made (Y1): one transaction for all of them, records identical to
//     what an import makes (clean, no data, attributes pending), and it adds only names with
//     no record, so a name a program creates meanwhile is never overwritten (its upload's
//     If-None-Match finds the conflict, C3). ApplyRemote is kept for names that have a record.
//     A name that ImportDir skipped because only a tombstone (a local delete not yet sent) is
//     there gets RemoteChanged afterwards, so a delete of an object that changed remotely is
//     dropped (C6);
//   - a directory's own marker (Y8): a changed marker is RemoteChanged of the directory
//     (KindDir); a marker found for a directory with no base is adopted by ImportDir.
//
// Directories that vanished remotely (no key under them any more, or their marker deleted) are
// left alone: a directory has no data to be stale, a vanished prefix is indistinguishable from
// a directory whose files are all still to be uploaded, and removing a local directory would
// mean deciding for every descendant, dirty ones included, which is not a rule syncrule makes
// for one path. Its files' records still get RemoteDeleted one by one, so an emptied remote
// directory ends as an empty local one, which the user may rmdir.
//
// # Races with this mount's own writes
//
// A listing or HEAD may show this mount's own write before the layer recorded its result, or
// an object this mount has since deleted. Four guards keep that from looking like a remote
// change:
//
//  1. Records are read before the listing, and a discrepancy is acted on only if a fresh Stat
//     shows the same base and class afterwards: a base that moved meanwhile was our upload.
//  2. Keys with a queued bucket operation (Sink.Pending: an upload, delete or rename's copy
//     and delete) are skipped: the operation's result settles them, and a rename's old key
//     still holds the object that its copy moves (the layer's records no longer say so).
//  3. A change seen while an operation is in flight is held by syncrule itself (RemoteSeen)
//     and checked again after the operation's result (CheckRemote).
//  4. A directory is observed (Sink.Observe) from before its records are read until what was
//     seen is applied: a name whose record was removed meanwhile (a local delete that reached
//     the bucket after the listing saw its object, and whose tombstone went with it) is not
//     created again from the stale sighting. The next poll decides it.
//
// # The kernel
//
// syncfs gives the kernel attribute and entry TTLs of 1 s and opens files without keeping the
// page cache, so a change applied here is seen by programs within a second with no FUSE
// notification. Config.OnChange is called with every path changed (and with a directory whose
// entries changed), for a later explicit invalidation.
//
// It must not: decide what a remote change means (syncrule does, through Sink.ApplyRemote),
// list anything but imported directories, read data, or act on a key outside the prefix or on
// a hidden one (K3, K8).
package watch
