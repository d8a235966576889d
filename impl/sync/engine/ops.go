package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"strconv"
	"strings"

	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/impl/sync/importer"
	"github.com/mount-s3/mount-s3/impl/sync/local"
	"github.com/mount-s3/mount-s3/impl/write"
	"github.com/mount-s3/mount-s3/spec/posixmeta"
	"github.com/mount-s3/mount-s3/spec/syncrule"
)

// ErrConflict wraps the error of an op whose precondition failed because the bucket changed
// (C3, C6) and that is waiting for the conflict to be resolved.
var ErrConflict = errors.New("conflict: the bucket changed since this mount last synced the file")

// OpMetaKey is the user metadata the engine adds to every object it writes: the sync dir's
// fsid and the queue id of the op. A replay after a crash between a write and the commit of
// its result finds its precondition failed by its own write; the marker tells it so, instead
// of calling it a conflict and moving the file to lost+found.
const OpMetaKey = "mount-s3-op"

func (e *Engine) marker(op local.Op) string {
	return e.cfg.Layer.FSID() + "." + strconv.FormatUint(op.ID, 10)
}

// ours reports whether obj was written by this sync dir (its op marker names our fsid) though
// no recorded result says so: a write whose answer was lost, or whose result a crash kept
// from being recorded. Ops on one key run one at a time in queue order, so such a write is
// older than the op running now, which supersedes it: it is no other writer's change (C3).
func (e *Engine) ours(obj s3.ObjectInfo) bool {
	return strings.HasPrefix(obj.Metadata[OpMetaKey], e.cfg.Layer.FSID()+".")
}

// execute runs one op and reports its result to the layer.
func (e *Engine) execute(ctx context.Context, op local.Op) result {
	if op.ChainOf != 0 {
		// Its base is filled in when the copy it is chained to is recorded, which happened
		// (or not) after this op was listed.
		cur, ok, err := e.cfg.Layer.Op(op.ID)
		if err != nil {
			return result{kept: true, err: fmt.Errorf("reading queued op %d for /%s: %w", op.ID, op.Path, err)}
		}
		if !ok {
			return e.done(op, result{})
		}
		op = cur
	}
	var r result
	switch op.Kind {
	case local.OpUpload:
		r = e.upload(ctx, op)
		r.kind = "upload"
	case local.OpDelete:
		r = e.delete(ctx, op)
		r.kind = "delete"
	case local.OpRename:
		r = e.rename(ctx, op)
		r.kind = "rename"
	default:
		// Written by a newer version of the layer: keep it for a version that knows it.
		r = result{kept: true, persistent: true, err: fmt.Errorf("queued op %d for /%s: unknown kind %v", op.ID, op.Path, op.Kind)}
	}
	if r.err != nil && ctx.Err() != nil {
		return result{cancelled: true}
	}
	e.trace(op, r)
	return r
}

// trace writes one debug line per op run: what it was and how it ended, so that a wrong
// outcome can be followed back through the ops on its key (--debug).
func (e *Engine) trace(op local.Op, r result) {
	if !e.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	outcome := "done"
	switch {
	case r.kept:
		outcome = "kept"
	case r.backoff:
		outcome = "failed, reported"
	}
	e.logf(slog.LevelDebug, "sync: op %d %v /%s key=%s dst=%s gen=%d base=%q chain=%d none-match=%v: %s (%v)",
		op.ID, op.Kind, op.Path, op.Key, op.DstKey, op.Gen, op.Base.ETag, op.ChainOf, op.IfNoneMatch, outcome, r.err)
}

// done removes op from the durable queue; its result is recorded by then.
func (e *Engine) done(op local.Op, r result) result {
	if err := e.cfg.Layer.Done(op.ID); err != nil {
		// The op runs again and finds itself stale.
		return result{kept: true, err: fmt.Errorf("removing op %d for /%s from the queue: %w", op.ID, op.Path, err)}
	}
	return r
}

// feed reports ev for op.Path to the rule, then finishes op with r. A record that is gone
// has nothing to learn from ev.
func (e *Engine) feed(op local.Op, ev syncrule.Event, r result) result {
	res, err := e.cfg.Layer.Apply(op.Path, ev, e.cfg.Params)
	if err != nil && !errors.Is(err, local.ErrNotFound) {
		return result{kept: true, err: fmt.Errorf("recording the result of %v /%s: %w", op.Kind, op.Path, err)}
	}
	e.otherActions(op.Path, res.Actions)
	return e.done(op, r)
}

// upload runs an OpUpload: a PUT of the generation's snapshot (Y6), a multipart upload for a
// large one, or a CopyObject onto itself for an attribute change (Y7).
func (e *Engine) upload(ctx context.Context, op local.Op) result {
	l := e.cfg.Layer
	info, err := l.Stat(op.Path)
	if errors.Is(err, local.ErrNotFound) {
		// Deleted (a tombstone now, which the rule turns into a delete or nothing) or
		// renamed away (the rename owes the bucket its own ops): this upload has no file.
		return e.notUploaded(ctx, op)
	}
	if err != nil {
		return result{kept: true, err: err}
	}
	if s := info.State; s.InFlight != syncrule.OpUpload || s.InFlightGen != op.Gen {
		// A replay whose result was recorded before the crash, or an op overtaken by a
		// rename's copy: the record says what the bucket holds.
		e.logf(slog.LevelInfo, "sync: /%s: upload of generation %d is no longer in flight; dropped", op.Path, op.Gen)
		return e.done(op, result{})
	}
	opts := s3.WriteOptions{Metadata: e.attrs(info, op)}
	if e.cfg.InferContentType && info.Kind == local.KindFile {
		opts.ContentType = s3.ContentTypeFor(op.Key)
	}
	if op.IfNoneMatch {
		opts.IfNoneMatch = "*"
	} else {
		opts.IfMatch = op.Base.ETag
	}
	if r, ok := e.stillConflicting(ctx, op); ok {
		return r
	}
	var obj s3.ObjectInfo
	size := info.Size
	switch {
	case op.MetadataOnly:
		obj, err = e.copyInPlace(ctx, op, opts)
	case info.Kind == local.KindDir:
		obj, err = e.cfg.Store.Put(ctx, op.Key, bytes.NewReader(nil), 0, opts)
	case info.Kind == local.KindSymlink:
		obj, err = e.cfg.Store.Put(ctx, op.Key, strings.NewReader(info.Target), int64(len(info.Target)), opts)
	case info.Kind.Special():
		obj, err = e.cfg.Store.Put(ctx, op.Key, bytes.NewReader(nil), 0, opts)
	default:
		var snap io.ReadCloser
		var gen uint64
		snap, gen, size, err = l.Snapshot(op.Path)
		switch {
		case errors.Is(err, local.ErrNotFound):
			return e.notUploaded(ctx, op)
		case err != nil:
			e.logf(slog.LevelError, "sync: error: snapshot of /%s: %v", op.Path, err)
			return e.feed(op, syncrule.UploadFailed{Gen: op.Gen}, result{err: err, backoff: true,
				persistent: errors.Is(err, local.ErrNoData)})
		case gen != op.Gen:
			// Written between the start of the round and the snapshot: uploading these
			// bytes as generation op.Gen would misname them. The rule restarts the round
			// at once with the current generation (its window has passed already).
			snap.Close()
			return e.notUploaded(ctx, op)
		}
		obj, err = e.put(ctx, op.Key, snap, size, opts)
		snap.Close()
	}
	if err != nil {
		return e.uploadFailed(ctx, op, opts, err)
	}
	r := e.uploaded(ctx, op, info, obj, size)
	if r.err == nil && !op.MetadataOnly {
		r.bytes = size
	}
	return r
}

// notUploaded ends an upload op without uploading. If this op's write reached the bucket
// before a crash, the rule must learn the version it made (a tombstone deletes it, a file
// changed since uses it as the next precondition); otherwise the rule hears of a failure.
func (e *Engine) notUploaded(ctx context.Context, op local.Op) result {
	remote, found, err := e.head(ctx, op.Key)
	if err != nil {
		return result{kept: true, err: err}
	}
	if found && remote.Metadata[OpMetaKey] == e.marker(op) {
		return e.uploaded(ctx, op, local.Info{}, remote, remote.Size)
	}
	return e.feed(op, syncrule.UploadFailed{Gen: op.Gen}, result{})
}

// stillConflicting skips the write of an op kept after a conflict while the bucket still
// holds the version that conflicted: re-sending a large file every backoff would only fail
// again.
func (e *Engine) stillConflicting(ctx context.Context, op local.Op) (result, bool) {
	e.mu.Lock()
	seen, ok := e.conflicted[op.ID]
	e.mu.Unlock()
	if !ok {
		return result{}, false
	}
	remote, found, err := e.head(ctx, op.Key)
	if err != nil {
		return result{kept: true, err: err}, true
	}
	if !found || !importer.VersionOf(remote).Same(seen) {
		return result{}, false // changed again: try the write
	}
	ev := syncrule.UploadFailed{Gen: op.Gen, Conflict: true, Remote: importer.VersionOf(remote), RemoteSize: remote.Size}
	return e.conflict(ctx, op, ev, &remote, s3.ErrPreconditionFailed), true
}

// uploaded records a successful upload.
func (e *Engine) uploaded(ctx context.Context, op local.Op, before local.Info, obj s3.ObjectInfo, size int64) result {
	v := importer.VersionOf(obj)
	if v.IsZero() {
		// Some stores answer a write without an ETag; the rule needs the base.
		head, found, err := e.head(ctx, op.Key)
		if err != nil || !found {
			return result{kept: true, err: fmt.Errorf("reading the version written at %s: %w", op.Key, orNotFound(err))}
		}
		v = importer.VersionOf(head)
	}
	e.logf(slog.LevelDebug, "sync: uploaded /%s (%d bytes, generation %d) to %s, etag %s", op.Path, size, op.Gen, op.Key, v.ETag)
	if after, err := e.cfg.Layer.Stat(op.Path); err == nil && before.ID != 0 && after.ID != before.ID {
		// Another file took the path. If it replaced the uploading one by a rename, its
		// record continues the replaced one's state (moveTx), this upload included: it
		// must learn the version, which is now what the bucket holds at its key and the
		// precondition of its own upload; without it the record waits for ever. If the
		// uploading file was renamed away, its rename finds our object via supersede.
		e.supersede(op.Key, op.Base, v)
		if s := after.State; s.InFlight != syncrule.OpUpload || s.InFlightGen != op.Gen {
			return e.done(op, result{})
		}
	}
	res, err := e.cfg.Layer.Apply(op.Path, syncrule.UploadSucceeded{Gen: op.Gen, Version: v}, e.cfg.Params)
	if errors.Is(err, local.ErrNotFound) {
		e.supersede(op.Key, op.Base, v)
		return e.done(op, result{})
	}
	if err != nil {
		return result{kept: true, err: fmt.Errorf("recording the upload of /%s: %w", op.Path, err)}
	}
	e.otherActions(op.Path, res.Actions)
	return e.done(op, result{})
}

func (e *Engine) supersede(key string, from, to syncrule.Version) {
	e.mu.Lock()
	e.superseded[key] = supersession{from: from, to: to}
	e.mu.Unlock()
}

// uploadFailed handles a failed write: a conflict (C3) if its precondition failed, else a
// retryable failure the rule hears of, so the next round uploads the newest generation.
func (e *Engine) uploadFailed(ctx context.Context, op local.Op, opts s3.WriteOptions, err error) result {
	if ctx.Err() != nil {
		return result{cancelled: true}
	}
	precondition := errors.Is(err, s3.ErrPreconditionFailed) ||
		(opts.IfMatch != "" && errors.Is(err, s3.ErrNotFound)) // If-Match on a missing object
	if !precondition {
		if mayHaveArrived(err) {
			// The write may have reached the store with its answer lost (a connection reset
			// after the request was sent). If it is there, it succeeded; if an earlier write
			// of ours is there, the rule learns its version, so that a delete or rename of the
			// file owes the bucket its removal (the fault campaign found such a file left in
			// the bucket after its local delete, then imported back as a remote change).
			remote, found, herr := e.head(ctx, op.Key)
			if herr != nil {
				// Whether the write arrived is unknown: the op stays in flight and runs again
				// after a backoff, when a conditional write or a HEAD tells. Reporting a
				// failure now would let the rule forget an object this write may have made,
				// which a local delete then leaves in the bucket for good (the engine fault
				// campaign found such objects).
				e.logf(slog.LevelError, "sync: error: upload of /%s to %s failed and whether it arrived is unknown (%v); will retry: %v", op.Path, op.Key, herr, err)
				return result{kept: true, err: err}
			}
			if found {
				if remote.Metadata[OpMetaKey] == e.marker(op) {
					e.logf(slog.LevelInfo, "sync: /%s: the upload's answer was lost but %s holds it (etag %s)", op.Path, op.Key, remote.ETag)
					return e.uploaded(ctx, op, local.Info{}, remote, remote.Size)
				}
				if e.ours(remote) {
					e.logf(slog.LevelError, "sync: error: upload of /%s to %s failed, will retry over an earlier upload of ours (etag %s): %v", op.Path, op.Key, remote.ETag, err)
					return e.feed(op, syncrule.UploadFailed{Gen: op.Gen, Remote: importer.VersionOf(remote), RemoteSize: remote.Size, Own: true}, result{err: err, backoff: true})
				}
			}
		}
		e.logf(slog.LevelError, "sync: error: upload of /%s to %s failed, will retry: %v", op.Path, op.Key, err)
		return e.feed(op, syncrule.UploadFailed{Gen: op.Gen}, result{err: err, backoff: true, persistent: persistent(err)})
	}
	remote, found, herr := e.head(ctx, op.Key)
	if herr != nil {
		// The object there may be this op's own write (an earlier attempt whose answer was
		// lost): kept in flight, as above, until a HEAD tells.
		e.logf(slog.LevelError, "sync: error: upload of /%s: precondition failed and reading %s failed, will retry: %v", op.Path, op.Key, herr)
		return result{kept: true, err: herr}
	}
	if found && remote.Metadata[OpMetaKey] == e.marker(op) {
		// This op's own write, made before a crash or a lost response.
		return e.uploaded(ctx, op, local.Info{}, remote, remote.Size)
	}
	if found && e.ours(remote) {
		// An earlier upload of this file whose answer was lost: its bytes are older than
		// the local ones, and the next round replaces them on their version.
		e.logf(slog.LevelInfo, "sync: /%s: %s holds an earlier upload of this file whose answer was lost (etag %s); uploading again over it",
			op.Path, op.Key, remote.ETag)
		return e.feed(op, syncrule.UploadFailed{Gen: op.Gen, Remote: importer.VersionOf(remote), RemoteSize: remote.Size, Own: true}, result{})
	}
	if found && op.IfNoneMatch && strings.HasSuffix(op.Key, "/") {
		// A directory's marker that no listing of the directory showed yet (it was seen as a
		// common prefix of its parent): only attributes, nothing to lose. It becomes the base
		// and the next round replaces it conditionally on it.
		if aerr := e.cfg.Layer.AdoptMarker(op.Path, importer.VersionOf(remote)); aerr != nil {
			return e.feed(op, syncrule.UploadFailed{Gen: op.Gen}, result{err: aerr, backoff: true})
		}
		e.logf(slog.LevelInfo, "sync: /%s: found the directory's marker %s (etag %s); updating it", op.Path, op.Key, remote.ETag)
		r := e.feed(op, syncrule.UploadFailed{Gen: op.Gen}, result{})
		e.poke()
		return r
	}
	ev := syncrule.UploadFailed{Gen: op.Gen, Conflict: true}
	if found {
		ev.Remote, ev.RemoteSize = importer.VersionOf(remote), remote.Size
	}
	return e.conflict(ctx, op, ev, remoteInfo(remote, found), err)
}

// conflict reports a precondition failure to the rule, which resolves it: the bucket wins (C4).
// The layer carries the outcome out in one transaction with the op's removal: a dirty file's
// local version moves to lost+found and the bucket's version (or its absence) is imported at
// the path; a local delete is dropped and the bucket's version reappears (C6). The conflict is
// then resolved, not pending: the op is done and a Flush succeeds. Only if the layer refuses
// the outcome is the local version kept and the op left queued (OnConflict may deal with it).
func (e *Engine) conflict(ctx context.Context, op local.Op, ev syncrule.Event, remote *s3.ObjectInfo, cause error) result {
	e.mu.Lock()
	e.stats.Conflicts++
	e.mu.Unlock()
	res, err := e.cfg.Layer.Apply(op.Path, ev, e.cfg.Params)
	switch {
	case err == nil && resolved(res):
		e.logConflict(op, remote, res)
		e.importAfter(ctx, op.Path, op.Key, remote, res.Actions)
		e.otherActions(op.Path, res.Actions)
		return e.done(op, result{})
	case err == nil:
		// No conflict after all: the bucket holds the base (changed and changed back), so
		// the rule retries; or the op was stale.
		e.otherActions(op.Path, res.Actions)
		e.logf(slog.LevelInfo, "sync: /%s: precondition failed at %s but the bucket holds the base; retrying", op.Path, op.Key)
		return e.done(op, result{err: fmt.Errorf("%v /%s: %w", op.Kind, op.Path, cause), backoff: true})
	case errors.Is(err, local.ErrNotFound):
		return e.done(op, result{})
	case !errors.Is(err, local.ErrInvalid) && !errors.Is(err, local.ErrBusy):
		return result{kept: true, err: fmt.Errorf("recording the conflict at /%s: %w", op.Path, err)}
	}
	now := "no object"
	if remote != nil {
		now = "etag " + remote.ETag
		e.mu.Lock()
		e.conflicted[op.ID] = importer.VersionOf(*remote)
		e.mu.Unlock()
	}
	cerr := fmt.Errorf("/%s (%s, base etag %q, bucket has %s): %w", op.Path, op.Key, op.Base.ETag, now, ErrConflict)
	if h := e.cfg.OnConflict; h != nil {
		herr := h(ctx, Conflict{Op: op, Event: ev, Remote: remote, Err: err})
		if herr == nil {
			e.logf(slog.LevelInfo, "sync: conflict at /%s handled", op.Path)
			return e.done(op, result{})
		}
		e.logf(slog.LevelWarn, "sync: warning: conflict handler for /%s failed: %v", op.Path, herr)
	}
	e.logf(slog.LevelWarn, "sync: warning: conflict: bucket changed %s since this mount last synced /%s (base etag %q, now %s); local version kept, not uploaded: %v",
		op.Key, op.Path, op.Base.ETag, now, err)
	return result{kept: true, persistent: true, err: cerr}
}

// resolved: the rule decided a conflict and the layer carried it out.
func resolved(res local.Applied) bool {
	for _, a := range res.Actions {
		switch a.(type) {
		case syncrule.MoveToLostFound, syncrule.ImportRemote:
			return true
		}
	}
	return false
}

// logConflict writes the one line a conflict gets: the original path, where the local version
// went, and what the path shows now.
func (e *Engine) logConflict(op local.Op, remote *s3.ObjectInfo, res local.Applied) {
	what := "was deleted in the bucket"
	now := "/" + op.Path + " is gone, as in the bucket"
	if remote != nil {
		what = "changed in the bucket (etag " + remote.ETag + ")"
		now = "the bucket's version is at /" + op.Path
	}
	var msg string
	switch {
	case res.LostFound != "":
		extra := ""
		if res.NoBaseData {
			extra = " (only its attributes had changed, over bytes the bucket no longer serves: the lost+found file keeps the attributes and is empty)"
		}
		msg = fmt.Sprintf("/%s %s since this mount last synced it; the local version was moved to /%s%s; %s",
			op.Path, what, res.LostFound, extra, now)
	case op.Kind == local.OpDelete && !strings.HasSuffix(op.Key, "/"):
		msg = fmt.Sprintf("the local delete of /%s was dropped: the object %s since this mount last synced it; %s (C6)",
			op.Path, what, now)
	default:
		msg = fmt.Sprintf("the directory marker of /%s %s; the bucket's attributes win and the local change to them was dropped",
			op.Path, what)
	}
	// A warning: a program's closed version is now only in lost+found.
	e.logf(slog.LevelWarn, "sync: conflict: %s", msg)
	e.recordResolution(Resolution{Path: op.Path, LostFound: res.LostFound, What: msg})
}

// importAfter brings in what an import of a conflict left pending: the data of a small file
// (ImportRemote.FetchData, Y1) and the object's attributes (Y3). Best effort: a failure leaves
// the record metadata-only with default attributes, which reads stream and the importer's
// Resume completes at the next start.
func (e *Engine) importAfter(ctx context.Context, path, key string, remote *s3.ObjectInfo, acts []syncrule.Action) {
	var imp *syncrule.ImportRemote
	for _, a := range acts {
		if a, ok := a.(syncrule.ImportRemote); ok {
			imp = &a
		}
	}
	if imp == nil || imp.Version.IsZero() {
		return
	}
	info, err := e.cfg.Layer.Stat(path)
	if err != nil || !info.AttrPending || !info.State.Base.Same(imp.Version) {
		return
	}
	meta := posixmeta.Attr{}
	if remote != nil && importer.VersionOf(*remote).Same(imp.Version) {
		meta = posixmeta.Decode(remote.Metadata)
	}
	kind, target := info.Kind, ""
	if kind == local.KindFile && local.KindOfMeta(meta.Kind).Special() {
		kind = local.KindOfMeta(meta.Kind) // an empty object: nothing to fetch
	}
	switch {
	case kind == local.KindFile && (imp.FetchData || meta.Kind == posixmeta.Symlink):
		f, err := importer.FetchVersion(ctx, e.cfg.Store, e.cfg.Layer, path, key, imp.Version, info.Size)
		if err != nil {
			e.logf(slog.LevelInfo, "sync: /%s: importing the bucket's version after the conflict: %v; reads stream it", path, err)
			return
		}
		meta, kind, target = f.Meta, f.Kind, f.Target
	case remote == nil:
		return
	}
	a := info.Attr.Overlay(meta)
	if !meta.HasMtime && remote != nil && !remote.LastModified.IsZero() {
		a.Mtime = remote.LastModified
	}
	if err := e.cfg.Layer.SetRemoteAttr(path, imp.Version, a, kind, target); err != nil {
		e.logf(slog.LevelInfo, "sync: /%s: recording the bucket's attributes after the conflict: %v", path, err)
	}
}

// copyInPlace exports attributes only (Y7): a copy of the base onto itself with new
// metadata, conditional on the source still being the version the HEAD saw (and so the
// base), which closes the window between the check and the copy. An object over the copy
// threshold is copied in parts (s3.CopyLarge), each part and the completion conditional.
func (e *Engine) copyInPlace(ctx context.Context, op local.Op, opts s3.WriteOptions) (s3.ObjectInfo, error) {
	remote, found, err := e.head(ctx, op.Key)
	if err != nil {
		return s3.ObjectInfo{}, err
	}
	if !found || !e.sameAsBase(op.Key, op.Base, remote) {
		return s3.ObjectInfo{}, fmt.Errorf("s3 CopyObject %q onto itself: the object is not the base: %w", op.Key, s3.ErrPreconditionFailed)
	}
	if opts.Metadata == nil {
		opts.Metadata = map[string]string{} // nil would copy the old metadata
	}
	// The completion of a multipart copy checks the key still holds what was copied; a
	// plain copy has its source condition, on the same key.
	opts.IfMatch, opts.IfNoneMatch = remote.ETag, ""
	return s3.CopyLarge(ctx, e.cfg.Store, remote, op.Key, opts, e.copyConfig())
}

func (e *Engine) copyConfig() s3.CopyConfig {
	return s3.CopyConfig{Threshold: e.cfg.CopyThreshold, PartSize: e.cfg.CopyPartSize, Concurrency: partsInFlight}
}

// renameCopy copies the rename's source, as src (its HEAD) describes it, to the destination,
// conditional on the source still being that version. A plain copy keeps the source's
// metadata and, for a source that was not uploaded in parts, its ETag: a replay recognises
// the finished copy by it. A multipart copy (over the copy threshold) has to write the
// metadata and gets a new ETag, so it writes the source's metadata with this op's marker,
// which a replay recognises instead.
func (e *Engine) renameCopy(ctx context.Context, op local.Op, src s3.ObjectInfo) (s3.ObjectInfo, error) {
	cfg := e.copyConfig()
	var opts s3.WriteOptions
	if cfg.Multipart(src.Size) {
		// A replay after a crash between the completion and its record: the copy is there
		// (only this op writes its marker, and only from the base), and is long to redo.
		if dst, found, err := e.head(ctx, op.DstKey); err == nil && found && dst.Metadata[OpMetaKey] == e.marker(op) {
			return dst, nil
		}
		opts.Metadata = maps.Clone(src.Metadata)
		if opts.Metadata == nil {
			opts.Metadata = map[string]string{}
		}
		opts.Metadata[OpMetaKey] = e.marker(op)
		opts.ContentType = src.ContentType
	}
	return s3.CopyLarge(ctx, e.cfg.Store, src, op.DstKey, opts, cfg)
}

// put writes size bytes of the snapshot at key: one PUT up to PartSize, else a multipart
// upload with a bounded number of parts in flight, aborted on failure.
func (e *Engine) put(ctx context.Context, key string, snap io.Reader, size int64, opts s3.WriteOptions) (s3.ObjectInfo, error) {
	if size <= e.cfg.PartSize {
		rs, ok := snap.(io.ReadSeeker)
		if !ok {
			data, err := io.ReadAll(io.LimitReader(snap, size))
			if err != nil {
				return s3.ObjectInfo{}, err
			}
			rs = bytes.NewReader(data)
		}
		return e.cfg.Store.Put(ctx, key, rs, size, opts)
	}
	u := write.New(write.Config{Store: e.cfg.Store, Budget: e.cfg.Budget, PartSize: e.cfg.PartSize,
		MaxInFlight: partsInFlight, Options: opts}, key)
	buf := make([]byte, min(e.cfg.PartSize, 1<<20))
	for off := int64(0); off < size; {
		n, err := io.ReadFull(snap, buf[:min(int64(len(buf)), size-off)])
		if err != nil {
			u.Abort(ctx)
			return s3.ObjectInfo{}, fmt.Errorf("reading the snapshot for %s: %w", key, err)
		}
		if err := u.Write(ctx, off, buf[:n]); err != nil {
			return s3.ObjectInfo{}, err // Write aborts the upload
		}
		off += int64(n)
	}
	return u.Complete(ctx)
}

// delete runs an OpDelete (Y7, Y8). S3 has no conditional delete, so the object is checked
// against the base first (C6); the window between HEAD and DELETE is not covered.
//
// A failed delete is retried as the same op instead of being reported: deletes a rename owes
// for a file that was being uploaded have no record that would queue them again.
func (e *Engine) delete(ctx context.Context, op local.Op) result {
	if op.ChainOf != 0 && op.Base.IsZero() {
		// The copy this delete is chained to made nothing at the key: nothing of ours there.
		return e.done(op, result{})
	}
	remote, found, err := e.head(ctx, op.Key)
	if err != nil {
		e.logf(slog.LevelError, "sync: error: delete of %s (/%s): %v; will retry", op.Key, op.Path, err)
		return result{kept: true, err: err, persistent: persistent(err)}
	}
	if found && op.ChainOf != 0 && !e.sameAsBase(op.Key, op.Base, remote) && !e.ours(remote) {
		// The object a rename's copy made for a path removed since was replaced by someone
		// else: theirs, not ours to delete (C6), and no record is left to conflict.
		e.logf(slog.LevelWarn, "sync: warning: %s (/%s) changed in the bucket since this mount copied it there (etag %s, ours %s); left in place",
			op.Key, op.Path, remote.ETag, op.Base.ETag)
		return e.done(op, result{})
	}
	if found && !op.Base.IsZero() && !e.sameAsBase(op.Key, op.Base, remote) && !e.ours(remote) {
		ev := syncrule.DeleteFailed{Gen: op.Gen, Conflict: true, Remote: importer.VersionOf(remote), RemoteSize: remote.Size}
		return e.conflict(ctx, op, ev, remoteInfo(remote, true), s3.ErrPreconditionFailed)
	}
	if found {
		if err := e.cfg.Store.Delete(ctx, op.Key); err != nil {
			e.logf(slog.LevelError, "sync: error: delete of %s (/%s): %v; will retry", op.Key, op.Path, err)
			return result{kept: true, err: err, persistent: persistent(err)}
		}
		e.logf(slog.LevelDebug, "sync: deleted %s (/%s, generation %d)", op.Key, op.Path, op.Gen)
	}
	if op.ChainOf != 0 {
		return e.done(op, result{}) // no record's state is waiting for it
	}
	return e.feed(op, syncrule.DeleteSucceeded{Gen: op.Gen}, result{})
}

// rename runs an OpRename (Y9): copy the source to the destination if the source is still
// the base, record the copy as generation Gen of the destination, then delete the source.
// Every step is checked or idempotent, so a replay after a crash at any point converges: a
// source already gone with the destination holding the base's bytes is a finished rename.
func (e *Engine) rename(ctx context.Context, op local.Op) result {
	if op.ChainOf != 0 && op.Base.IsZero() {
		// Chained to a copy that made nothing at the source key (its own source had changed
		// or was gone): there is nothing of ours to move. The destination is uploaded from
		// local data if it has any.
		e.logf(slog.LevelWarn, "sync: warning: rename of %s to %s (/%s): the rename before it copied nothing there; the destination is uploaded from local data",
			op.Key, op.DstKey, op.Path)
		return e.done(op, result{})
	}
	src, srcFound, err := e.head(ctx, op.Key)
	if err != nil {
		return e.renameFailed(op, err)
	}
	switch {
	case srcFound && e.sameAsBase(op.Key, op.Base, src):
		// Without metadata the copy keeps the source's: the base's attributes, which are
		// what generation Gen is; later attribute changes are later generations.
		obj, err := e.renameCopy(ctx, op, src)
		if err != nil {
			return e.renameFailed(op, err)
		}
		v := importer.VersionOf(obj)
		if v.IsZero() {
			dst, found, err := e.head(ctx, op.DstKey)
			if err != nil || !found {
				return e.renameFailed(op, orNotFound(err))
			}
			v = importer.VersionOf(dst)
		}
		if r, ok := e.markCopied(op, v); !ok {
			return r
		}
		if err := e.cfg.Store.Delete(ctx, op.Key); err != nil {
			return e.renameFailed(op, err)
		}
		e.logf(slog.LevelDebug, "sync: renamed %s to %s (/%s)", op.Key, op.DstKey, op.Path)
	case srcFound:
		// Someone else wrote the source since our base: their version is not ours to move
		// or delete (C6). The destination stays dirty and is uploaded from local data.
		e.logf(slog.LevelWarn, "sync: warning: rename of %s to %s (/%s): the source changed in the bucket (etag %s, base %s); left in place, the destination is uploaded from local data",
			op.Key, op.DstKey, op.Path, src.ETag, op.Base.ETag)
	default:
		dst, found, err := e.head(ctx, op.DstKey)
		if err != nil {
			return e.renameFailed(op, err)
		}
		if found && (normETag(dst.ETag) == normETag(op.Base.ETag) || dst.Metadata[OpMetaKey] == e.marker(op)) {
			// Copied and deleted before a crash; the result may not be recorded yet.
			if r, ok := e.markCopied(op, importer.VersionOf(dst)); !ok {
				return r
			}
			e.logf(slog.LevelDebug, "sync: renamed %s to %s (/%s), finished after a restart", op.Key, op.DstKey, op.Path)
		} else {
			e.logf(slog.LevelWarn, "sync: warning: rename of %s to %s (/%s): the source is gone from the bucket; the destination is uploaded from local data",
				op.Key, op.DstKey, op.Path)
		}
	}
	return e.done(op, result{})
}

// markCopied records that the destination's object is generation op.Gen (the source's base),
// or, if the destination moved on before this copy ran, gives v to the ops the layer chained
// to this one (they move or delete it), before the source is deleted.
func (e *Engine) markCopied(op local.Op, v syncrule.Version) (result, bool) {
	if op.Gen == 0 {
		return result{}, true
	}
	_, err := e.cfg.Layer.CopyDone(op, v)
	switch {
	case errors.Is(err, local.ErrNotFound):
		e.logf(slog.LevelWarn, "sync: warning: /%s moved again before its rename reached the bucket; %s is left in the bucket", op.Path, op.DstKey)
	case err != nil:
		return result{kept: true, err: fmt.Errorf("recording the rename to /%s: %w", op.Path, err)}, false
	}
	return result{}, true
}

func (e *Engine) renameFailed(op local.Op, err error) result {
	e.logf(slog.LevelError, "sync: error: rename of %s to %s (/%s) failed, will retry: %v", op.Key, op.DstKey, op.Path, err)
	return result{kept: true, err: err, persistent: persistent(err)}
}

// attrs is the metadata to write with the object of info.
func (e *Engine) attrs(info local.Info, op local.Op) map[string]string {
	m := map[string]string{}
	if e.cfg.Attrs != nil {
		maps.Copy(m, e.cfg.Attrs(info))
	}
	m[OpMetaKey] = e.marker(op)
	return m
}

// sameAsBase reports whether the object at key is base, or our own upload that replaced it
// after the file moved away.
func (e *Engine) sameAsBase(key string, base syncrule.Version, obj s3.ObjectInfo) bool {
	v := importer.VersionOf(obj)
	if v.Same(base) {
		return true
	}
	e.mu.Lock()
	sup, ok := e.superseded[key]
	e.mu.Unlock()
	return ok && sup.from.Same(base) && v.Same(sup.to)
}

func (e *Engine) head(ctx context.Context, key string) (s3.ObjectInfo, bool, error) {
	info, err := e.cfg.Store.Head(ctx, key)
	if errors.Is(err, s3.ErrNotFound) {
		return s3.ObjectInfo{}, false, nil
	}
	return info, err == nil, err
}

func remoteInfo(obj s3.ObjectInfo, found bool) *s3.ObjectInfo {
	if !found {
		return nil
	}
	return &obj
}

// normETag quotes an ETag as S3 sends it. Stores return them quoted; this only makes a store
// that does not agree with the rest.
func normETag(etag string) string { return s3.NormalizeETag(etag) }

// persistent: errors that retrying soon will not fix; Flush reports them at once.
// mayHaveArrived reports whether a failed write may still have been carried out by the store:
// whatever was not refused for good (persistent). Not even a failed dial tells: the SDK
// retries, and an earlier attempt may have been carried out with its answer lost before the
// store went away.
func mayHaveArrived(err error) bool { return !persistent(err) }

func persistent(err error) bool {
	return errors.Is(err, s3.ErrAccessDenied) || errors.Is(err, s3.ErrNoSuchBucket) || errors.Is(err, s3.ErrInvalidKey)
}

func orNotFound(err error) error {
	if err == nil {
		return s3.ErrNotFound
	}
	return err
}
