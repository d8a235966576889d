package watch_test

import (
	"context"
	"fmt"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/impl/sync/local"
	"github.com/mount-s3/mount-s3/impl/sync/watch"
	"github.com/mount-s3/mount-s3/spec/syncrule"
)

// awsEvent is a notification as S3 sends it (one record; the key URL-encoded, '+' for space).
func awsEvent(event, bkt, key string, size int64) string {
	return fmt.Sprintf(`{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-east-1",
"eventTime":"2026-01-01T00:00:00.000Z","eventName":%q,"userIdentity":{"principalId":"AWS:X"},
"requestParameters":{"sourceIPAddress":"10.0.0.1"},"responseElements":{"x-amz-request-id":"R"},
"s3":{"s3SchemaVersion":"1.0","configurationId":"c","bucket":{"name":%q,"ownerIdentity":{"principalId":"X"},
"arn":"arn:aws:s3:::%s"},"object":{"key":%q,"size":%d,"eTag":"0123456789abcdef0123456789abcdef","sequencer":"0055AED6DCD90281E5"}}}]}`,
		event, bkt, bkt, url.QueryEscape(key), size)
}

// minioEvent is MinIO's webhook body: the record with "s3:"-prefixed event names, plus
// EventName and Key ("bucket/key", not encoded) at the top level.
func minioEvent(event, bkt, key string) string {
	return fmt.Sprintf(`{"EventName":%q,"Key":%q,"Records":[{"eventVersion":"2.0","eventSource":"minio:s3",
"awsRegion":"","eventTime":"2026-01-01T00:00:00.000Z","eventName":%q,"userIdentity":{"principalId":"minioadmin"},
"s3":{"s3SchemaVersion":"1.0","configurationId":"Config","bucket":{"name":%q,"ownerIdentity":{"principalId":"minioadmin"},
"arn":"arn:aws:s3:::%s"},"object":{"key":%q,"size":3,"eTag":"abc","contentType":"text/plain","userMetadata":{},
"sequencer":"17B"}},"source":{"host":"127.0.0.1","port":"","userAgent":"MinIO"}}]}`,
		event, bkt+"/"+key, event, bkt, bkt, url.QueryEscape(key))
}

// post sends body to the handler and returns the status and the response body.
func post(h http.Handler, method, body string) (int, string) {
	r := httptest.NewRequest(method, "/", strings.NewReader(body))
	rw := httptest.NewRecorder()
	h.ServeHTTP(rw, r)
	return rw.Code, rw.Body.String()
}

// running starts w.Run and returns a function that waits for the queue to drain.
func running(t *testing.T, w *watch.Watcher) func() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return func() {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, w.Drain(ctx))
	}
}

func TestEventsAWSShaped(t *testing.T) {
	e := newEnv(t)
	e.put("pre/a", "one")
	e.put("pre/b", "bee")
	e.put("pre/same", "same")
	e.importDirs("")
	w := e.watcher(watch.Config{})
	drain := running(t, w)
	h := w.Handler()

	e.put("pre/a", "two!")
	e.del("pre/b")
	sp := e.put("pre/new file+x", "spaces and plus")
	for _, body := range []string{
		awsEvent("ObjectCreated:Put", bucket, "pre/a", 4),
		awsEvent("ObjectRemoved:Delete", bucket, "pre/b", 0),
		awsEvent("ObjectCreated:CompleteMultipartUpload", bucket, "pre/new file+x", 15),
		// Stale: says removed, but the object is there unchanged. The HEAD decides.
		awsEvent("ObjectRemoved:Delete", bucket, "pre/same", 0),
		// Not ours: another bucket, outside the prefix, hidden (K3), an access.
		awsEvent("ObjectCreated:Put", "other", "pre/x", 1),
		awsEvent("ObjectCreated:Put", bucket, "elsewhere/x", 1),
		awsEvent("ObjectCreated:Put", bucket, "pre/../x", 1),
		awsEvent("ObjectAccessed:Get", bucket, "pre/a", 1),
	} {
		code, msg := post(h, http.MethodPost, body)
		require.Equal(t, http.StatusOK, code, msg)
	}
	drain()
	require.Equal(t, map[string]call{
		"a": {"a", local.KindFile, syncrule.RemoteChanged{Version: e.head("pre/a"), Size: 4}},
		"b": {"b", local.KindFile, syncrule.RemoteDeleted{}},
	}, e.sink.take())
	info, err := e.layer.Stat("new file+x")
	require.NoError(t, err)
	require.Equal(t, sp.ETag, info.State.Base.ETag)
	_, heads := e.cnt.reset()
	require.Equal(t, map[string]int{"pre/a": 1, "pre/b": 1, "pre/new file+x": 1, "pre/same": 1}, heads,
		"one HEAD per key of ours; none for keys that are not")
}

func TestEventsMinIOShaped(t *testing.T) {
	e := newEnv(t)
	e.put("pre/a", "one")
	e.put("pre/d/x", "x")
	e.importDirs("", "d")
	w := e.watcher(watch.Config{})
	drain := running(t, w)
	h := w.Handler()

	e.put("pre/a", "two")
	e.del("pre/d/x")
	n := e.put("pre/d/n ü", "new")
	for _, body := range []string{
		minioEvent("s3:ObjectCreated:Put", bucket, "pre/a"),
		minioEvent("s3:ObjectRemoved:Delete", bucket, "pre/d/x"),
		minioEvent("s3:ObjectCreated:Copy", bucket, "pre/d/n ü"),
	} {
		code, msg := post(h, http.MethodPost, body)
		require.Equal(t, http.StatusOK, code, msg)
	}
	drain()
	require.Equal(t, map[string]call{
		"a":   {"a", local.KindFile, syncrule.RemoteChanged{Version: e.head("pre/a"), Size: 3}},
		"d/x": {"d/x", local.KindFile, syncrule.RemoteDeleted{}},
	}, e.sink.take())
	info, err := e.layer.Stat("d/n ü")
	require.NoError(t, err)
	require.Equal(t, n.ETag, info.State.Base.ETag)

	// MinIO's top-level form alone (no Records).
	m := e.put("pre/top", "t")
	code, msg := post(h, http.MethodPost, `{"EventName":"s3:ObjectCreated:Put","Key":"bkt/pre/top"}`)
	require.Equal(t, http.StatusOK, code, msg)
	drain()
	info, err = e.layer.Stat("top")
	require.NoError(t, err)
	require.Equal(t, m.ETag, info.State.Base.ETag)
}

func TestEventsSNSEnvelope(t *testing.T) {
	e := newEnv(t)
	e.importDirs("")
	w := e.watcher(watch.Config{})
	drain := running(t, w)
	s := e.put("pre/sns", "via sns")
	inner := awsEvent("ObjectCreated:Put", bucket, "pre/sns", 7)
	body := fmt.Sprintf(`{"Type":"Notification","MessageId":"m","TopicArn":"arn:aws:sns:us-east-1:1:t","Message":%q}`, inner)
	code, msg := post(w.Handler(), http.MethodPost, body)
	require.Equal(t, http.StatusOK, code, msg)
	drain()
	info, err := e.layer.Stat("sns")
	require.NoError(t, err)
	require.Equal(t, s.ETag, info.State.Base.ETag)

	code, _ = post(w.Handler(), http.MethodPost, `{"Type":"SubscriptionConfirmation","Message":"confirm","SubscribeURL":"https://example.invalid/confirm"}`)
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, e.logs.String(), "confirm it yourself")
}

func TestEventsNewDirectoriesAndShadowing(t *testing.T) {
	e := newEnv(t)
	e.put("pre/a", "a")
	e.importDirs("")
	w := e.watcher(watch.Config{})
	drain := running(t, w)
	h := w.Handler()

	// A key two levels below an imported directory: its first missing directory appears
	// (K1), not imported; nothing below it is read.
	e.put("pre/e/f/g", "deep")
	// A file key whose name also has keys below: a directory (K4).
	e.put("pre/k", "shadowed")
	e.put("pre/k/z", "below")
	// A marker of a new directory.
	e.put("pre/m/", "")
	for _, k := range []string{"pre/e/f/g", "pre/k", "pre/m/"} {
		code, msg := post(h, http.MethodPost, awsEvent("ObjectCreated:Put", bucket, k, 1))
		require.Equal(t, http.StatusOK, code, msg)
	}
	drain()
	require.Empty(t, e.sink.take())
	for _, d := range []string{"e", "k", "m"} {
		info, err := e.layer.Stat(d)
		require.NoError(t, err, d)
		require.Equal(t, local.KindDir, info.Kind, d)
		require.False(t, info.Imported, d)
	}
	_, err := e.layer.Stat("e/f")
	require.Error(t, err)

	// Keys in a directory not imported are not even looked at (Y1 imports it on access).
	e.cnt.reset()
	code, _ := post(h, http.MethodPost, awsEvent("ObjectCreated:Put", bucket, "pre/e/f/h", 1))
	require.Equal(t, http.StatusOK, code)
	drain()
	_, heads := e.cnt.reset()
	require.Empty(t, heads)
}

func TestEventsBadInput(t *testing.T) {
	e := newEnv(t)
	e.importDirs("")
	w := e.watcher(watch.Config{QueueLimit: 2})
	h := w.Handler()

	code, msg := post(h, http.MethodPost, `{"Records":[`)
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, msg, "malformed S3 event notification")
	code, msg = post(h, http.MethodPost, `[1,2]`)
	require.Equal(t, http.StatusBadRequest, code, msg)
	code, _ = post(h, http.MethodPost, `{"Records":[{"s3":{"object":{"key":"%zz"}}}]}`)
	require.Equal(t, http.StatusOK, code, "a bad key is skipped, not fatal")
	code, _ = post(h, http.MethodPost, `{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"bkt"}`)
	require.Equal(t, http.StatusOK, code)
	code, _ = post(h, http.MethodGet, "")
	require.Equal(t, http.StatusOK, code)
	code, _ = post(h, http.MethodPut, "{}")
	require.Equal(t, http.StatusMethodNotAllowed, code)
	code, _ = post(h, http.MethodPost, strings.Repeat(" ", 9<<20))
	require.Equal(t, http.StatusRequestEntityTooLarge, code)

	// Bounded: Run is not running, so nothing drains; the same key twice counts once.
	for _, k := range []string{"pre/q1", "pre/q2", "pre/q1"} {
		code, _ = post(h, http.MethodPost, awsEvent("ObjectCreated:Put", bucket, k, 1))
		require.Equal(t, http.StatusOK, code)
	}
	code, _ = post(h, http.MethodPost, awsEvent("ObjectCreated:Put", bucket, "pre/q3", 1))
	require.Equal(t, http.StatusServiceUnavailable, code)

	// Random bytes and mangled notifications never panic.
	rng := rand.New(rand.NewSource(1))
	good := awsEvent("ObjectCreated:Put", bucket, "pre/a", 1)
	for i := 0; i < 2000; i++ {
		b := []byte(good)
		for j := 0; j < 1+rng.Intn(8); j++ {
			b[rng.Intn(len(b))] = byte(rng.Intn(256))
		}
		code, _ := post(h, http.MethodPost, string(b))
		require.Contains(t, []int{http.StatusOK, http.StatusBadRequest, http.StatusServiceUnavailable}, code)
	}
}

// A late notification for a file of a directory this mount removed with rm -r (no marker,
// so the directory's record went at once while its files' deletes are still queued) must not
// bring the directory back: the key's delete is ours (guard 2).
func TestEventForQueuedDeleteKeepsDirectoryGone(t *testing.T) {
	e := newEnv(t)
	e.put("pre/d/x", "x1")
	e.importDirs("", "d")
	w := e.watcher(watch.Config{})
	drain := running(t, w)
	require.NoError(t, e.layer.Remove("d/x"))
	_, err := e.layer.Apply("d/x", syncrule.Flush{Now: time.Now()}, syncrule.DefaultParams())
	require.NoError(t, err)
	require.NoError(t, e.layer.Rmdir("d"))
	code, msg := post(w.Handler(), http.MethodPost, awsEvent("ObjectCreated:Put", bucket, "pre/d/x", 2))
	require.Equal(t, http.StatusOK, code, msg)
	drain()
	_, err = e.layer.Stat("d")
	require.ErrorIs(t, err, local.ErrNotFound, "the removed directory came back from a notification of our own queued delete")
}
