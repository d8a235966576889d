package main

import (
	"context"
	"errors"
	"time"

	"github.com/mount-s3/mount-s3/impl/control"
	"github.com/mount-s3/mount-s3/impl/status"
	"github.com/mount-s3/mount-s3/impl/streamfs"
	"github.com/mount-s3/mount-s3/impl/sync/engine"
	"github.com/mount-s3/mount-s3/impl/sync/local"
	"github.com/mount-s3/mount-s3/spec/syncrule"
)

// This file is the mount's side of the control socket (impl/control): what `mount-s3
// status` and `mount-s3 sync --flush` are answered.

// streamingControl answers a streaming mount's requests: its summary; there is nothing to
// flush, since every file is in the bucket when its close returns.
func streamingControl(o *options, f *streamfs.FS) control.Handler {
	return func(ctx context.Context, req control.Request, send func(status.Line) error) error {
		switch req.Op {
		case control.OpStatus:
			_, done, failed := f.UploadStats()
			s := status.Summary{Mode: "streaming", Bucket: o.bucket, Prefix: o.prefix, Uploads: done, Failures: failed}
			s.LastError, s.LastErrorAt = f.LastError()
			return send(status.Line{Summary: &s})
		case control.OpFlush:
			return errors.New("this is a streaming mount: every file is in the bucket when its close returns; flush applies to sync-mode mounts (--sync-dir)")
		}
		return errors.New("unknown request " + req.Op)
	}
}

// control answers a sync mount's requests.
func (c *syncCore) control(ctx context.Context, req control.Request, send func(status.Line) error) error {
	switch req.Op {
	case control.OpStatus:
		return c.status(ctx, req.All, send)
	case control.OpFlush:
		return c.flush(ctx, send)
	}
	return errors.New("unknown request " + req.Op)
}

// status sends the summary, then with all every pending change, rename and lost+found file.
// The local layer is read in pages, each its own short transaction, so a million pending
// changes cost memory for one page and never hold back the write-back.
func (c *syncCore) status(ctx context.Context, all bool, send func(status.Line) error) error {
	s, lost, err := c.summary(ctx)
	if err != nil {
		return err
	}
	if err := send(status.Line{Summary: &s}); err != nil || !all {
		return err
	}
	if err := c.eachPending(ctx, func(p status.Pending) error { return send(status.Line{Pending: &p}) }); err != nil {
		return err
	}
	if err := c.eachRename(ctx, func(r status.Rename) error { return send(status.Line{Rename: &r}) }); err != nil {
		return err
	}
	for _, l := range lost {
		if err := send(status.Line{LostFound: &l}); err != nil {
			return err
		}
	}
	return nil
}

// summary is what `status` prints first (and the metrics' sync gauges read), with the files
// in lost+found behind it.
func (c *syncCore) summary(ctx context.Context) (status.Summary, []status.LostFound, error) {
	st := c.engine.Stats()
	s := status.Summary{Mode: "sync", Bucket: c.bucket, Prefix: c.prefix, SyncDir: c.syncDir,
		Uploads: st.Uploads + st.Deletes + st.Renames, Failures: st.Failures, Conflicts: st.Resolved,
		LastError: st.LastError, LastErrorAt: st.LastErrorAt, Importing: c.importer.Pending()}
	err := c.eachPending(ctx, func(p status.Pending) error {
		switch {
		case p.Deleted:
			s.PendingDeletes++
		default:
			s.PendingUploads++
			s.PendingBytes += p.Size
		}
		if p.Uploading {
			s.Uploading++
		}
		if s.OldestPending.IsZero() || p.DirtySince.Before(s.OldestPending) {
			s.OldestPending = p.DirtySince
		}
		return nil
	})
	if err != nil {
		return s, nil, err
	}
	if err := c.eachRename(ctx, func(status.Rename) error { s.Renames++; return nil }); err != nil {
		return s, nil, err
	}
	lost, err := c.lostFound()
	for _, l := range lost {
		s.LostFound++
		s.LostFoundBytes += l.Size
	}
	return s, lost, err
}

// eachPending calls fn for every change the bucket lacks, a page of the local layer at a time.
func (c *syncCore) eachPending(ctx context.Context, fn func(status.Pending) error) error {
	var cursor []byte
	for {
		page, next, err := c.layer.DirtyPage(cursor, 1024)
		if err != nil {
			return err
		}
		for _, d := range page {
			if d.State.LostFound {
				continue
			}
			p := status.Pending{Path: d.Path, Deleted: d.State.Deleted, DirtySince: d.State.DirtySince,
				Uploading: d.State.InFlight != syncrule.OpNone}
			if !p.Deleted {
				p.Size = d.Size
			}
			if err := fn(p); err != nil {
				return err
			}
		}
		if next == nil || ctx.Err() != nil {
			return ctx.Err()
		}
		cursor = next
	}
}

// eachRename calls fn for every rename whose copies and deletes are not all done (Y9).
func (c *syncCore) eachRename(ctx context.Context, fn func(status.Rename) error) error {
	var after uint64
	for {
		ops, err := c.layer.PendingPage(after, 1024)
		if err != nil || len(ops) == 0 {
			return err
		}
		for _, op := range ops {
			after = op.ID
			if op.Kind != local.OpRename {
				continue
			}
			if err := fn(status.Rename{From: op.Key, To: op.DstKey, Queued: op.Queued}); err != nil {
				return err
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

func (c *syncCore) lostFound() ([]status.LostFound, error) {
	files, err := c.layer.List(syncrule.LostFoundDir(c.layer.FSID()))
	if errors.Is(err, local.ErrNotFound) {
		return nil, nil
	}
	var out []status.LostFound
	for _, f := range files {
		out = append(out, status.LostFound{Path: f.Path, OriginalPath: f.OriginalPath, Size: f.Size})
	}
	return out, err
}

// progressEvery is how often a flush sends its progress.
const progressEvery = 500 * time.Millisecond

// flush writes back every change now (engine.Flush), sending its progress, and ends with
// what it wrote, each conflict the bucket won, or why it stopped. It stops waiting (the
// write-back goes on) when the command goes away.
func (c *syncCore) flush(ctx context.Context, send func(status.Line) error) error {
	start, began := c.engine.Stats(), time.Now()
	var total uint64
	if err := c.eachPending(ctx, func(status.Pending) error { total++; return nil }); err != nil {
		return err
	}
	if err := c.eachRename(ctx, func(status.Rename) error { total++; return nil }); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- c.engine.Flush(ctx) }()
	tick := time.NewTicker(progressEvery)
	defer tick.Stop()
	progress := func() status.Progress {
		st := c.engine.Stats()
		p := status.Progress{Done: st.Uploads + st.Deletes + st.Renames - start.Uploads - start.Deletes - start.Renames,
			Bytes: st.UploadedBytes - start.UploadedBytes, Elapsed: time.Since(began), Failures: st.Failures - start.Failures}
		p.Total = max(total, p.Done+uint64(max(st.DirtyFiles, st.PendingOps)))
		if p.Failures > 0 {
			p.Retrying = explain(errors.New(st.LastError), c.opts)
		}
		return p
	}
	for {
		select {
		case <-tick.C:
			p := progress()
			if err := send(status.Line{Progress: &p}); err != nil {
				return err
			}
			continue
		case err := <-done:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			p := progress()
			r := status.FlushResult{Bytes: p.Bytes, Elapsed: p.Elapsed}
			st := c.engine.Stats()
			r.Uploaded, r.Deleted, r.Renamed = st.Uploads-start.Uploads, st.Deletes-start.Deletes, st.Renames-start.Renames
			resolved, dropped := c.engine.ResolutionsSince(start.Resolved)
			for _, x := range resolved {
				r.Conflicts = append(r.Conflicts, status.Conflict{Path: x.Path, LostFound: x.LostFound, What: x.What})
			}
			r.ConflictsNotListed = dropped
			if err != nil {
				r.Failed, r.StoreFailed = flushFailure(err, c.opts)
			}
			return send(status.Line{Result: &r})
		}
	}
}

// flushFailure puts why a flush stopped in words, and says whether the store (rather than
// the local disk) is the cause.
func flushFailure(err error, o *options) (string, bool) {
	local := errors.Is(err, local.ErrCorrupt) || errors.Is(err, local.ErrNoData) || errors.Is(err, local.ErrNoSpace)
	what := explain(err, o)
	if local {
		return "the sync dir failed: " + what + "; the changes not written back are kept there", false
	}
	return "the store did not take the write-back: " + what + "; the changes not written back are safe in the sync dir and are retried", !errors.Is(err, engine.ErrConflict)
}
