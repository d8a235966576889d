package watch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/impl/sync/importer"
	"github.com/mount-s3/mount-s3/impl/sync/local"
	"github.com/mount-s3/mount-s3/spec/keymap"
	"github.com/mount-s3/mount-s3/spec/syncrule"
)

// maxBody bounds one notification: S3 sends one record per message, MinIO a few; this leaves
// room for batching forwarders without letting a client fill memory.
const maxBody = 8 << 20

// notification is the JSON of an S3 event notification: AWS's {"Records": [...]}, MinIO's
// webhook body (the same, plus EventName and Key, "bucket/key", at the top level), or an SNS
// HTTP(S) delivery wrapping the former in Message.
type notification struct {
	Records   []eventRecord `json:"Records"`
	EventName string        `json:"EventName"` // MinIO
	Key       string        `json:"Key"`       // MinIO: bucket + "/" + key, not URL-encoded

	Type         string `json:"Type"`    // SNS: "Notification", "SubscriptionConfirmation"
	Message      string `json:"Message"` // SNS: the S3 notification, as a JSON string
	SubscribeURL string `json:"SubscribeURL"`
}

type eventRecord struct {
	EventName string `json:"eventName"`
	S3        struct {
		Bucket struct {
			Name string `json:"name"`
		} `json:"bucket"`
		Object struct {
			Key  string `json:"key"` // URL-encoded, '+' for space
			Size int64  `json:"size"`
			ETag string `json:"eTag"`
		} `json:"object"`
	} `json:"s3"`
}

// Handler is the endpoint of --events-addr: POST an S3 event notification. It answers 200 as
// soon as the keys are queued (400 for a body that is not a notification, 503 when the queue
// is full); Run's workers check each key with a HEAD and feed the result to the layer.
func (w *Watcher) Handler() http.Handler { return http.HandlerFunc(w.serveEvents) }

func (w *Watcher) serveEvents(rw http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodPost:
	case http.MethodGet, http.MethodHead:
		// Liveness checks of webhook targets.
		rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(rw, "mount-s3 sync mode: POST S3 event notifications (JSON) here\n")
		return
	default:
		rw.Header().Set("Allow", "POST, GET, HEAD")
		http.Error(rw, "method not allowed: POST S3 event notifications (JSON) here", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(rw, fmt.Sprintf("notification larger than %d bytes", maxBody), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(rw, "reading the body: "+err.Error(), http.StatusBadRequest)
		return
	}
	keys, err := w.parse(body)
	if err != nil {
		http.Error(rw, "malformed S3 event notification: "+err.Error(), http.StatusBadRequest)
		return
	}
	if !w.enqueue(keys) {
		rw.Header().Set("Retry-After", "1")
		http.Error(rw, "too many notifications waiting; retry later", http.StatusServiceUnavailable)
		return
	}
	rw.WriteHeader(http.StatusOK)
}

// parse returns the keys a notification is about that the mount shows: of the mount's
// bucket, inside the prefix and not hidden (K3, K8), for an event that can change what a key
// holds. Other records are ignored, not errors: a bucket's notifications go to every
// subscriber.
func (w *Watcher) parse(body []byte) ([]string, error) {
	var n notification
	if err := json.Unmarshal(body, &n); err != nil {
		return nil, fmt.Errorf("expected a JSON object with \"Records\": %v", err)
	}
	if n.Type != "" && n.Message != "" && len(n.Records) == 0 {
		// SNS delivery: the S3 notification is the Message.
		if n.Type != "Notification" {
			if n.Type == "SubscriptionConfirmation" {
				w.logf(slog.LevelInfo, "event notifications: an SNS subscription asks to be confirmed; "+
					"confirm it yourself (visit its SubscribeURL %s); this endpoint never fetches URLs it is sent", n.SubscribeURL)
			}
			return nil, nil
		}
		return w.parse([]byte(n.Message))
	}
	var keys []string
	add := func(event, bucket, key string) {
		if !relevant(event) || bucket != w.cfg.Bucket || key == "" {
			return
		}
		if keymap.Visible(w.cfg.Prefix, key) {
			keys = append(keys, key)
		}
	}
	for _, rec := range n.Records {
		key, err := url.QueryUnescape(rec.S3.Object.Key)
		if err != nil {
			w.logf(slog.LevelWarn, "event notifications: ignoring key %q: not URL-encoded: %v", rec.S3.Object.Key, err)
			continue
		}
		add(rec.EventName, rec.S3.Bucket.Name, key)
	}
	if len(n.Records) == 0 && n.Key != "" {
		// MinIO's top-level form alone.
		bucket, key, _ := strings.Cut(n.Key, "/")
		add(n.EventName, bucket, key)
	}
	return keys, nil
}

// relevant: events that may change what a key holds. Accesses, tagging, ACLs, replication and
// restores do not; an event with no name (a forwarder that drops it) may, and the HEAD
// decides anyway. MinIO prefixes names with "s3:".
func relevant(event string) bool {
	event = strings.TrimPrefix(event, "s3:")
	for _, p := range []string{"ObjectCreated:", "ObjectRemoved:", "LifecycleExpiration:"} {
		if strings.HasPrefix(event, p) {
			return true
		}
	}
	return event == ""
}

// enqueue queues keys for the workers, each key at most once (a key queued twice is checked
// once: the HEAD reads the newest state anyway). It refuses all of them if they do not fit.
// LOCKS_EXCLUDED(w.mu)
func (w *Watcher) enqueue(keys []string) bool {
	if len(keys) == 0 {
		return true
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	fresh := 0
	seen := map[string]bool{}
	for _, k := range keys {
		if !w.queued[k] && !seen[k] {
			seen[k] = true
			fresh++
		}
	}
	if len(w.queue)+fresh > w.cfg.QueueLimit {
		return false
	}
	for _, k := range keys {
		if !w.queued[k] {
			w.queued[k] = true
			w.queue = append(w.queue, k)
		}
	}
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return true
}

// next takes a key from the queue.
// LOCKS_EXCLUDED(w.mu)
func (w *Watcher) next() (string, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.queue) == 0 {
		return "", false
	}
	k := w.queue[0]
	w.queue[0] = ""
	w.queue = w.queue[1:]
	delete(w.queued, k)
	w.active++
	if len(w.queue) > 0 {
		// Let another worker take the rest.
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
	return k, true
}

// LOCKS_EXCLUDED(w.mu)
func (w *Watcher) eventWorker(ctx context.Context) {
	for {
		key, ok := w.next()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-w.wake:
				continue
			}
		}
		err := w.checkKey(ctx, key)
		if err == nil {
			w.mu.Lock()
			delete(w.busy, key)
			w.mu.Unlock()
		}
		if err != nil && ctx.Err() == nil {
			if errors.Is(err, local.ErrBusy) && w.busyRetry(ctx, key) {
				// The file is open (often only until the kernel's release of a close that
				// already returned): try again shortly rather than wait for the next poll.
			} else {
				w.logf(slog.LevelWarn, "event notification for %q: %v", key, err)
			}
		}
		w.mu.Lock()
		w.active--
		w.mu.Unlock()
		if ctx.Err() != nil {
			return
		}
	}
}

// Drain waits until every queued key has been checked (for tests; Run must be running).
// LOCKS_EXCLUDED(w.mu)
func (w *Watcher) Drain(ctx context.Context) error {
	for {
		w.mu.Lock()
		idle := len(w.queue) == 0 && w.active == 0
		w.mu.Unlock()
		if idle {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// checkKey confirms what the bucket holds at key with a HEAD and feeds it to the layer, if the
// key's directory is imported. A key in a directory the mount has not imported yet is not
// looked at: its first access lists it (Y1).
func (w *Watcher) checkKey(ctx context.Context, key string) error {
	path, isDir, err := keymap.PathOfKey(w.cfg.Prefix, key)
	if err != nil || path == "" || syncrule.InLostFound("", path) {
		return nil
	}
	dir, name := keymap.Split(path)
	parent, err := w.cfg.Layer.Stat(dir)
	if gone(err) {
		return w.checkAncestor(ctx, key, path)
	}
	if err != nil {
		return err
	}
	if parent.Kind != local.KindDir || !parent.Imported {
		return nil
	}
	defer w.cfg.Layer.Observe(dir)() // guard 4
	busy, err := w.pendingKeys()
	if err != nil || busy[key] {
		return err
	}
	// The record before the HEAD (guard 1).
	rec, recErr := w.cfg.Layer.Stat(path)
	if recErr != nil && !gone(recErr) {
		return recErr
	}
	v, size, mtime, exists, err := w.head(ctx, key)
	if err != nil {
		return err
	}

	if recErr == nil {
		if (rec.Kind == local.KindDir) != isDir {
			return nil // the other class of key: shadowed (K4) or not this record's object
		}
		ev, adopt := eventFor(rec, exists, v, size)
		switch {
		case adopt && !rec.Imported:
			return nil // its first listing adopts the marker
		case adopt:
			return w.importNew(path, v, nil)
		case ev == nil:
			return nil
		}
		busy, err := w.pendingKeys()
		if err != nil {
			return err
		}
		return w.applyChecked(change{rec, ev}, busy)
	}

	// No visible record: a new name (or a tombstone, see importNew).
	if !exists {
		return nil
	}
	if isDir {
		return w.importNew(dir, syncrule.Version{}, []local.Remote{{Name: name, Kind: local.KindDir}})
	}
	// A directory of the same name shadows the object (K4).
	below, err := w.anyKeyBelow(ctx, keymap.DirKey(w.cfg.Prefix, path))
	if err != nil {
		return err
	}
	if kind, _ := keymap.ResolveLookup(true, below); kind == keymap.Dir {
		return w.importNew(dir, syncrule.Version{}, []local.Remote{{Name: name, Kind: local.KindDir}})
	}
	return w.importNew(dir, syncrule.Version{}, []local.Remote{{Name: name, Kind: local.KindFile, Version: v, Size: size, Mtime: mtime}})
}

// checkAncestor handles a key whose directory has no record: if the deepest directory of its
// path that has one is imported, the first missing one is a new subdirectory of it (K1), as
// its listing would show, once a HEAD confirms the key exists.
func (w *Watcher) checkAncestor(ctx context.Context, key, path string) error {
	comps := strings.Split(path, keymap.Delimiter)
	cur := ""
	for _, c := range comps[:len(comps)-1] {
		next := keymap.Join(cur, c)
		info, err := w.cfg.Layer.Stat(next)
		if err == nil {
			if info.Kind != local.KindDir {
				return nil // a local file shadows the remote directory
			}
			cur = next
			continue
		}
		if !gone(err) {
			return err
		}
		d, err := w.cfg.Layer.Stat(cur)
		if err != nil || d.Kind != local.KindDir || !d.Imported || cur == "" && syncrule.InLostFound("", c) {
			if gone(err) {
				err = nil
			}
			return err
		}
		// Guards 2 and 4: a key of ours still being deleted (rm -r of a directory without a
		// marker leaves its files' deletes queued) is not a remote directory, nor is one
		// whose record went while the HEAD ran.
		defer w.cfg.Layer.Observe(cur)()
		busy, err := w.pendingKeys()
		if err != nil || busy[key] || busy[keymap.DirKey(w.cfg.Prefix, next)] {
			return err
		}
		_, _, _, exists, err := w.head(ctx, key)
		if err != nil || !exists {
			return err
		}
		return w.importNew(cur, syncrule.Version{}, []local.Remote{{Name: c, Kind: local.KindDir}})
	}
	return nil
}

// head reads what the bucket holds at key now.
func (w *Watcher) head(ctx context.Context, key string) (v syncrule.Version, size int64, mtime time.Time, exists bool, err error) {
	info, err := w.cfg.Store.Head(ctx, key)
	if errors.Is(err, s3.ErrNotFound) {
		return v, 0, mtime, false, nil
	}
	if err != nil {
		return v, 0, mtime, false, fmt.Errorf("head %q: %w", key, err)
	}
	return importer.VersionOf(info), info.Size, info.LastModified, true, nil
}

// anyKeyBelow reports whether any key starts with dirKey.
func (w *Watcher) anyKeyBelow(ctx context.Context, dirKey string) (bool, error) {
	page, err := w.cfg.Store.List(ctx, s3.ListInput{Prefix: dirKey, Delimiter: keymap.Delimiter, MaxKeys: 1})
	if err != nil {
		return false, fmt.Errorf("list %q: %w", dirKey, err)
	}
	return len(page.Objects) > 0 || len(page.CommonPrefixes) > 0, nil
}

// Retries of a key whose file was open when its notification was handled.
const (
	busyRetryEvery = 250 * time.Millisecond
	busyRetries    = 40 // 10 s; after that the next poll sees the change
)

// busyRetry queues key again after busyRetryEvery, at most busyRetries times in a row, and
// reports whether it did.
// LOCKS_EXCLUDED(w.mu)
func (w *Watcher) busyRetry(ctx context.Context, key string) bool {
	w.mu.Lock()
	if w.busy == nil {
		w.busy = map[string]int{}
	}
	w.busy[key]++
	n := w.busy[key]
	if n > busyRetries {
		delete(w.busy, key)
	}
	w.mu.Unlock()
	if n > busyRetries {
		return false
	}
	time.AfterFunc(busyRetryEvery, func() {
		if ctx.Err() == nil {
			w.enqueue([]string{key})
		}
	})
	return true
}
