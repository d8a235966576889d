// Package engine is the write-back worker of sync mode (rules Y4-Y9 of docs/SEMANTICS.md): it
// turns the local layer's dirty records and queued operations into bucket writes. It owns when
// a change goes out (the aggregation window of Y5, on an injected clock), how (a PUT of a
// snapshot, a multipart upload, a CopyObject onto itself for attributes, DeleteObject, and the
// copy+delete of a rename), the order of operations on one key, the pacing of retries, and
// reporting each result back to the layer so the rule (spec/syncrule) decides the file's next
// state. It does not decide anything the rule decides, and it never holds data of its own: the
// layer is the only durable state, so a crash at any point is resumed by the next Run.
//
// # How a change reaches the bucket
//
// The loop lists the dirty records, and for each one whose DueAt has passed feeds a Tick (or a
// Flush) through Layer.Apply, which commits the in-flight state and the queued Op in one
// transaction (SYNC.md invariant 5). Ops are then run by a bounded worker pool. An op's result
// is fed back through Apply (UploadSucceeded, UploadFailed, ...) before the op is removed from
// the queue with Done, so a crash between the two replays an op whose result is already
// recorded; every op is checked against the record (generation, in-flight state) or against
// the bucket (HEAD) before it acts, which makes such a replay harmless.
//
// # Ordering
//
// Ops touching the same key run in queue order, one at a time (a rename's delete of the old
// key before a new upload there, the first upload of a file before the delete a rename owes
// for it). Ops on different keys run in parallel. A path with an unfinished op is not ticked,
// so the rule never starts an upload that would race a rename's copy to the same key.
//
// # Failures
//
// Retryable failures (network, 5xx, throttling, anything not a precondition) are reported as
// such, and the path (or, for a rename, the op) backs off exponentially on the injected clock,
// up to MaxBackoff. Nothing is dropped: the data stays in the layer and the record stays dirty.
// A precondition failure is a conflict (C3): the engine reads what the bucket holds and feeds
// it to the rule. Until the layer can carry out the conflict actions (lost+found, import) it
// refuses them; the engine then keeps the local version and the op, logs the conflict, and
// retries later, or hands it to Config.OnConflict.
package engine
