// Package probe finds out at start-up whether a store honours conditional writes: S3 does,
// but many S3-compatible stores accept If-Match / If-None-Match on PUT and silently ignore
// them, which would let sync mode overwrite another writer's version without noticing (C3).
//
// It is a package of its own, above impl/s3 and beside the sync engine, because it only needs
// the Store contract and answers a question about the store, not about sync: the engine is
// told the answer (engine.Config.ConditionsUnsupported) and never probes by itself.
package probe

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/spec/keymap"
)

// NamePrefix starts the name of every probe object.
const NamePrefix = ".mount-s3-probe-"

// MaxKeyLen is the longest key S3 accepts, in bytes.
const MaxKeyLen = 1024

// wrongETag is an ETag no object has (an MD5 of all zero bits is not one S3 hands out for
// the probe's body).
const wrongETag = `"00000000000000000000000000000000"`

// ErrLeftBehind wraps the error of the final delete: the verdict returned with it is valid,
// but the probe object (hidden, never shown by a mount) is still in the bucket.
var ErrLeftBehind = errors.New("the probe object could not be deleted")

// Key returns a fresh probe key under the mount prefix that no mount ever shows, writes or
// deletes as a file (K3): its last component is longer than keymap.MaxNameLen. When the prefix
// is too long for that within MaxKeyLen, the key has an empty component instead (PREFIX + "/"
// + name), which is hidden too. The random part keeps two mounts probing at once apart.
func Key(prefix string) (string, error) {
	name, err := randomName()
	if err != nil {
		return "", err
	}
	long := name + strings.Repeat("x", keymap.MaxNameLen+1-len(name))
	var key string
	switch {
	case len(prefix)+len(long) <= MaxKeyLen:
		key = prefix + long
	case prefix != "" && len(prefix)+1+len(name) <= MaxKeyLen:
		key = prefix + keymap.Delimiter + name
	default:
		return "", fmt.Errorf("probe key: the prefix (%d bytes) leaves no room for a hidden key", len(prefix))
	}
	if keymap.Visible(prefix, key) {
		// Cannot happen with a valid prefix; a probe must never touch a visible file.
		return "", fmt.Errorf("probe key %q would be visible under prefix %q", key, prefix)
	}
	return key, nil
}

// FallbackKey returns a fresh probe key for stores that refuse every hidden key (MinIO and
// other stores that keep objects as files refuse components over 255 bytes, empty components,
// "." and ".."): a dot-name directly under the prefix, random so that it never names a user's
// object. It is visible to a listing for the few requests the probe takes.
func FallbackKey(prefix string) (string, error) {
	name, err := randomName()
	if err != nil {
		return "", err
	}
	return prefix + strings.TrimSuffix(name, "-"), nil
}

func randomName() (string, error) {
	var r [8]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", fmt.Errorf("probe key: %w", err)
	}
	return NamePrefix + hex.EncodeToString(r[:]) + "-", nil
}

// Probe runs ProbeConditionalWrites at a hidden Key under prefix and, if the store refuses that
// key's name (s3.ErrInvalidKey), once more at a FallbackKey. It returns the verdict, the key
// it last wrote (for a message about an object left behind) and ProbeConditionalWrites' error.
func Probe(ctx context.Context, store s3.Store, prefix string) (bool, string, error) {
	key, err := Key(prefix)
	if err != nil {
		return false, "", err
	}
	ok, err := ProbeConditionalWrites(ctx, store, key)
	if !errors.Is(err, s3.ErrInvalidKey) {
		return ok, key, err
	}
	if key, err = FallbackKey(prefix); err != nil {
		return false, "", err
	}
	ok, err = ProbeConditionalWrites(ctx, store, key)
	return ok, key, err
}

// ProbeConditionalWrites reports whether store honours If-None-Match and If-Match on PUT, and
// x-amz-copy-source-if-match on a copy. At
// key (which should come from Key) it writes a tiny object, then
//
//   - PUTs with If-None-Match: * (the object exists: must fail with 412),
//   - PUTs with If-Match: <an ETag the object does not have> (must fail with 412),
//   - copies it onto itself with x-amz-copy-source-if-match: <a wrong ETag> (must fail with
//     412: renames and attribute changes rely on it),
//   - PUTs with If-Match: <the object's ETag> (must succeed: a store that refuses every
//     conditional write would make every upload a conflict),
//
// and deletes it. A conditional PUT that succeeds where it should have failed means the store
// ignores conditions: (false, nil). Any other error (network, access, a store that rejects the
// conditions outright) ends the probe with (false, err): the verdict is unknown, and the caller
// should not rely on conditions. If only the final delete fails, the verdict stands and err
// wraps ErrLeftBehind.
func ProbeConditionalWrites(ctx context.Context, store s3.Store, key string) (bool, error) {
	body := []byte("mount-s3 conditional write probe\n")
	put := func(opts s3.WriteOptions) (s3.ObjectInfo, error) {
		return store.Put(ctx, key, bytes.NewReader(body), int64(len(body)), opts)
	}
	first, err := put(s3.WriteOptions{})
	if err != nil {
		return false, fmt.Errorf("probing conditional writes: %w", err)
	}
	ok, err := probe(ctx, store, key, first, put)
	if derr := store.Delete(context.WithoutCancel(ctx), key); derr != nil && err == nil {
		err = fmt.Errorf("probing conditional writes: %w: %w", ErrLeftBehind, derr)
	}
	return ok, err
}

func probe(ctx context.Context, store s3.Store, key string, first s3.ObjectInfo, put func(s3.WriteOptions) (s3.ObjectInfo, error)) (bool, error) {
	for _, c := range []struct {
		what string
		opts s3.WriteOptions
	}{
		{"If-None-Match: * on an existing object", s3.WriteOptions{IfNoneMatch: "*"}},
		{"If-Match with a wrong ETag", s3.WriteOptions{IfMatch: wrongETag}},
	} {
		_, err := put(c.opts)
		switch {
		case err == nil:
			return false, nil // the write went through: the condition was ignored
		case !errors.Is(err, s3.ErrPreconditionFailed):
			return false, fmt.Errorf("probing conditional writes (%s): %w", c.what, err)
		}
	}
	_, err := store.Copy(ctx, key, key, s3.WriteOptions{Metadata: map[string]string{"mount-s3-probe": "copy"}, SourceIfMatch: wrongETag})
	switch {
	case err == nil:
		return false, nil
	case !errors.Is(err, s3.ErrPreconditionFailed):
		return false, fmt.Errorf("probing conditional writes (a copy with x-amz-copy-source-if-match and a wrong ETag): %w", err)
	}
	etag := first.ETag
	if etag == "" {
		// Some stores answer a write without an ETag.
		head, err := store.Head(ctx, key)
		if err != nil {
			return false, fmt.Errorf("probing conditional writes: %w", err)
		}
		etag = head.ETag
	}
	if _, err := put(s3.WriteOptions{IfMatch: etag}); err != nil {
		return false, fmt.Errorf("probing conditional writes (If-Match with the object's ETag %s): %w", etag, err)
	}
	return true, nil
}
