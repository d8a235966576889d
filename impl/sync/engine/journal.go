package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/impl/sync/local"
)

// journaled is the Store the engine writes through: every multipart upload it opens is
// recorded in the layer before a part is sent and forgotten once completed or aborted, so
// that the first step after a crash (abortOrphans) aborts the uploads the crash left open
// instead of leaving their parts in the bucket for good.
type journaled struct {
	s3.Store
	layer *local.Layer
}

func (j journaled) CreateMultipart(ctx context.Context, key string, opts s3.WriteOptions) (string, error) {
	token, err := j.layer.IntendUpload(key)
	if err != nil {
		return "", fmt.Errorf("journaling an upload of %q: %w", key, err)
	}
	id, err := j.Store.CreateMultipart(ctx, key, opts)
	if err != nil {
		// The request may still have created an upload (its answer lost): keep the intent
		// only if so, which a clean refusal rules out.
		if !ambiguous(err) {
			j.layer.ForgetIntent(key, token)
		}
		return "", err
	}
	if err := j.layer.RecordUpload(key, token, id); err != nil {
		j.Store.AbortMultipart(context.WithoutCancel(ctx), key, id)
		return "", fmt.Errorf("journaling upload %s of %q: %w", id, key, err)
	}
	return id, nil
}

func (j journaled) CompleteMultipart(ctx context.Context, key, uploadID string, parts []s3.CompletedPart, opts s3.WriteOptions) (s3.ObjectInfo, error) {
	info, err := j.Store.CompleteMultipart(ctx, key, uploadID, parts, opts)
	if err == nil {
		// Best effort: an entry left behind is aborted at the next start, which is harmless
		// for a completed upload (aborting an unknown upload is not an error).
		j.layer.ForgetUpload(uploadID)
	}
	return info, err
}

func (j journaled) AbortMultipart(ctx context.Context, key, uploadID string) error {
	err := j.Store.AbortMultipart(ctx, key, uploadID)
	if err == nil {
		j.layer.ForgetUpload(uploadID)
	}
	return err
}

// ambiguous: a failed request that may still have taken effect at the store (no answer, or a
// 5xx that can come after the work was done), as opposed to a clean refusal.
func ambiguous(err error) bool {
	return !errors.Is(err, s3.ErrAccessDenied) && !errors.Is(err, s3.ErrNoSuchBucket) &&
		!errors.Is(err, s3.ErrInvalidKey) && !errors.Is(err, s3.ErrPreconditionFailed)
}

// intentWindow bounds which uploads of a key an intent left by a crash accounts for: those
// the store says were initiated this close to the intent's time (the two clocks may differ).
const intentWindow = 5 * time.Minute

// abortOrphans aborts the uploads the journal still lists: at start, none of them can be in
// use, so each was orphaned by a crash. An intent (a crash between the create request and
// journaling its id) is resolved by listing the key's uploads and aborting those initiated
// around the intent's time. One that cannot be aborted now stays journaled for the next start.
func (e *Engine) abortOrphans(ctx context.Context) {
	ups, err := e.cfg.Layer.OpenUploads()
	if err != nil {
		e.logf(slog.LevelWarn, "sync: reading the upload journal: %v", err)
		return
	}
	for _, u := range ups {
		actx, cancel := context.WithTimeout(ctx, time.Minute)
		if u.ID == "" {
			err = e.abortIntended(actx, u)
		} else if err = e.cfg.Store.AbortMultipart(actx, u.Key, u.ID); err == nil || errors.Is(err, s3.ErrNotFound) {
			e.logf(slog.LevelInfo, "sync: aborted upload %s of %s left open by a crash", u.ID, u.Key)
			err = e.cfg.Layer.ForgetUpload(u.ID)
		}
		cancel()
		if err != nil {
			e.logf(slog.LevelWarn, "sync: cleaning up the upload of %s left by a crash: %v (tried again at the next start)", u.Key, err)
		}
	}
}

func (e *Engine) abortIntended(ctx context.Context, u local.OpenUpload) error {
	all, err := e.cfg.Store.ListMultipartUploads(ctx, u.Key)
	if err != nil {
		return err
	}
	for _, up := range all {
		if up.Key != u.Key || up.Initiated.Before(u.Started.Add(-intentWindow)) || up.Initiated.After(u.Started.Add(intentWindow)) {
			continue
		}
		if err := e.cfg.Store.AbortMultipart(ctx, up.Key, up.UploadID); err != nil && !errors.Is(err, s3.ErrNotFound) {
			return err
		}
		e.logf(slog.LevelInfo, "sync: aborted upload %s of %s left open by a crash", up.UploadID, up.Key)
	}
	return e.cfg.Layer.ForgetIntent(u.Key, u.Token)
}
