package chaos

import (
	"context"
	"errors"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/conformance/harness"
	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/spec/syncrule"
)

// secret is the secret access key the confinement test mounts with: no log line, status
// report or message may ever contain it, nor a request signature.
const secret = "s3cr3t-Kq9vXw7ZmP2LtR8yBn4D"

// TestConfinement drives adversarial names, symlink targets and renames through a mount of a
// prefix, in both modes, and checks at the store's door (every HTTP request, recorded by a
// proxy) that no request names a key outside the prefix; that the objects beside the prefix
// are untouched; that the mount never resolves a symlink target itself; that the sync dir is
// private (0700, files 0600) and lost+found is not writable by others; and that the secret
// key and request signatures reach no log, status report or error message.
func TestConfinement(t *testing.T) {
	for _, mode := range []string{"streaming", "sync"} {
		t.Run(mode, func(t *testing.T) { confinement(t, mode) })
	}
}

func confinement(t *testing.T, mode string) {
	const prefix = "in/"
	srv, store := harness.NewServer(t)
	outside := map[string]string{"in": "beside the prefix", "inside": "a sibling", "out/x": "elsewhere", "i": "short"}
	if harness.Quirks().ObjectShadowsPrefix {
		delete(outside, "in") // MinIO would then list nothing under in/ (docs/STORES.md)
	}
	for k, v := range outside {
		_, err := store.Put(context.Background(), k, strings.NewReader(v), int64(len(v)), s3.WriteOptions{})
		require.NoError(t, err)
	}
	_, err := store.Put(context.Background(), prefix+"seed", strings.NewReader("seed"), 4, s3.WriteOptions{})
	require.NoError(t, err)

	p, err := Start(1, srv.URL(), DefaultRates)
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })
	p.SetFaults(false)
	p.RecordRequests()
	logDir := t.TempDir()
	args := []string{"--allow-overwrite", "--allow-delete", "--debug", "--log-directory", logDir}
	syncDir := filepath.Join(t.TempDir(), "sync")
	if mode == "sync" {
		args = append(args, "--sync-dir", syncDir, "--write-back-delay", "0")
	}
	// The embedded server checks no signature, so the mount can sign with a secret made for
	// this test; a real store needs the real one, which is then what must not leak.
	secret := secret
	var env []string
	if harness.ExternalURL() != "" {
		secret = os.Getenv("AWS_SECRET_ACCESS_KEY")
	} else {
		env = []string{"AWS_SECRET_ACCESS_KEY=" + secret}
	}
	m := harness.MountServer(t, p, store, harness.Options{Prefix: prefix, Args: args, Env: env})

	// Names at the edges.
	long := strings.Repeat("n", 255)
	for _, name := range []string{long, "...", ".hidden", `back\slash`, "uni-é日本", "sp ace", "in", "%2e%2e"} {
		require.NoError(t, os.WriteFile(m.Path(name), []byte(name), 0o644), "create %q", name)
	}
	require.NoError(t, os.MkdirAll(m.Path("d/e"), 0o755))
	require.NoError(t, os.WriteFile(m.Path("d/e/f"), []byte("f"), 0o644))
	// ".." from a directory of the mount stays in the mount.
	require.NoError(t, os.WriteFile(m.Path("d/e/../../out-escape"), []byte("climbed"), 0o644))
	_, err = os.Stat(m.Path(strings.Repeat("a", 256)))
	require.True(t, errors.Is(err, syscall.ENAMETOOLONG), "256-byte name: %v", err)

	if mode == "sync" {
		// Symlinks store their target; the mount never follows one itself.
		for name, target := range map[string]string{"abs": "/etc/passwd", "up": "../../out/x", "deep": strings.Repeat("../", 100) + "out/x",
			"long": strings.Repeat("t/", 1500)} {
			require.NoError(t, os.Symlink(target, m.Path(name)), "symlink %s", name)
			got, err := os.Readlink(m.Path(name))
			require.NoError(t, err)
			require.Equal(t, target, got)
		}
		_, err := os.ReadFile(m.Path("up")) // the kernel resolves it inside the mount: in/out/x does not exist
		require.True(t, errors.Is(err, fs.ErrNotExist), "reading through ../../out/x: %v", err)
		require.NoError(t, os.Rename(m.Path("d"), m.Path("d2")))
		require.NoError(t, os.Rename(m.Path("d2/e/f"), m.Path("top-f")))
		require.NoError(t, os.Chmod(m.Path("top-f"), 0o600))
		out, err := harness.Flush(t, m.Dir)
		require.NoError(t, err, "flush: %s", out)
	} else {
		require.NoError(t, os.Remove(m.Path("d/e/f")))
	}
	require.NoError(t, os.Remove(m.Path("in")))
	ents, err := os.ReadDir(m.Dir)
	require.NoError(t, err)
	require.NotEmpty(t, ents)

	// Status and a failing command, for the secret check below.
	status, _ := exec.Command(harness.Binary(t), "status", m.Dir).CombinedOutput()
	bad, _ := exec.Command(harness.Binary(t), "--foreground", "--endpoint-url", "http://127.0.0.1:1", "--force-path-style",
		"--region", "us-east-1", "nosuchbucket", t.TempDir()).CombinedOutput()

	// The door: every request named a key under the prefix.
	reqs := p.Requests()
	require.NotEmpty(t, reqs)
	bucketPath := "/" + store.Bucket()
	for _, r := range reqs {
		key := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, bucketPath), "/")
		q := r.URL.Query()
		switch {
		case key == "" && q.Has("list-type"), key == "" && q.Has("uploads"):
			require.True(t, strings.HasPrefix(q.Get("prefix"), prefix), "%s %s lists outside the prefix", r.Method, r.URL)
		case key == "":
			require.Contains(t, []string{"HEAD", "GET"}, r.Method, "a bucket-level %s %s", r.Method, r.URL)
		default:
			require.True(t, strings.HasPrefix(key, prefix), "%s %s names a key outside the prefix", r.Method, r.URL)
		}
		if src := r.Header.Get("X-Amz-Copy-Source"); src != "" {
			u, _ := url.PathUnescape(src)
			require.True(t, strings.HasPrefix(strings.TrimPrefix(u, "/"), store.Bucket()+"/"+prefix), "copy from %s", src)
		}
	}
	for k, v := range outside {
		b, err := getObject(context.Background(), store, k)
		require.NoError(t, err, "%s beside the prefix", k)
		require.Equal(t, v, string(b), "%s beside the prefix was changed", k)
	}
	b, err := getObject(context.Background(), store, prefix+"out-escape")
	require.NoError(t, err, "d/e/../../out-escape lands inside the mount")
	require.Equal(t, "climbed", string(b))

	if mode == "sync" {
		st, err := os.Stat(syncDir)
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o700), st.Mode().Perm(), "the sync dir is private")
		filepath.WalkDir(syncDir, func(path string, d fs.DirEntry, err error) error {
			require.NoError(t, err)
			info, err := d.Info()
			require.NoError(t, err)
			if d.IsDir() {
				require.Zero(t, info.Mode().Perm()&0o077, "%s is %v: only its owner may enter", path, info.Mode().Perm())
			} else if info.Mode().IsRegular() {
				require.Zero(t, info.Mode().Perm()&0o077, "%s is %v: only its owner may read", path, info.Mode().Perm())
			}
			return nil
		})
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), syncrule.LostFoundDirPrefix) {
				info, err := e.Info()
				require.NoError(t, err)
				require.Zero(t, info.Mode().Perm()&0o022, "lost+found is %v: others must not write it", info.Mode().Perm())
			}
		}
	}

	// Nothing secret anywhere a person or a log collector reads.
	m.Unmount(t)
	texts := map[string]string{"mount output": m.Logs(), "status": string(status), "failed mount": string(bad)}
	filepath.WalkDir(logDir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(path)
			texts[path] = string(b)
		}
		return nil
	})
	for where, text := range texts {
		require.NotContains(t, text, secret, "%s holds the secret key", where)
		for _, sig := range []string{"Signature=", "X-Amz-Signature", "x-amz-security-token", "X-Amz-Credential"} {
			require.NotContains(t, text, sig, "%s holds a request signature", where)
		}
	}
}
