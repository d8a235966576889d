package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mount-s3/mount-s3/impl/s3/embedded"
	"github.com/mount-s3/mount-s3/internal/buildbin"
	"github.com/mount-s3/mount-s3/mount"
)

// These tests run the real binary on bad input and check what a user sees: a non-zero exit
// and one line on stderr that says what is wrong.

func TestMain(m *testing.M) {
	code := m.Run()
	buildbin.Cleanup()
	os.Exit(code)
}

// cliBinary builds mount-s3 once per test run. It ignores $MOUNT_S3_BIN: these tests check
// this tree's command line.
func cliBinary(t *testing.T) string {
	t.Helper()
	bin, err := buildbin.Build(context.Background(), false, nil)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// cliEnv is the test process's environment made hermetic for the AWS SDK: static
// credentials, no config files, no instance metadata lookups, no readiness pipe.
func cliEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "AWS_") || strings.HasPrefix(kv, childEnv+"=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env,
		"AWS_ACCESS_KEY_ID="+embedded.Credentials.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY="+embedded.Credentials.SecretAccessKey,
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE="+os.DevNull,
		"AWS_SHARED_CREDENTIALS_FILE="+os.DevNull,
	)
}

type cliResult struct {
	code           int
	stdout, stderr string
	elapsed        time.Duration
}

// runCLI runs the binary with args and waits at most timeout. If it is still running then
// (it mounted when it should not have), the test fails, mountDir is unmounted and the
// process is killed.
func runCLI(t *testing.T, timeout time.Duration, mountDir string, args ...string) cliResult {
	t.Helper()
	return runCLIEnv(t, cliEnv(), timeout, mountDir, args...)
}

// runCLIEnv is runCLI with the environment env.
func runCLIEnv(t *testing.T, env []string, timeout time.Duration, mountDir string, args ...string) cliResult {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(cliBinary(t), args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(timeout):
		t.Errorf("mount-s3 %q still running after %v", args, timeout)
		if mountDir != "" {
			unmountIfMounted(t, mountDir)
		}
		cmd.Process.Kill()
		err = <-done
	}
	res := cliResult{stdout: stdout.String(), stderr: stderr.String(), elapsed: time.Since(start)}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		res.code = exitErr.ExitCode()
	default:
		t.Fatalf("mount-s3 %q: %v", args, err)
	}
	return res
}

// unmountIfMounted removes a mount the binary should never have made.
func unmountIfMounted(t *testing.T, dir string) {
	t.Helper()
	abs, _ := filepath.Abs(dir)
	if mounted, _ := mount.IsMountPoint(abs); !mounted {
		return
	}
	t.Errorf("%s is mounted; unmounting", abs)
	for i := 0; i < 50; i++ {
		if err := syscall.Unmount(abs, 0); err == nil || err == syscall.EINVAL {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	syscall.Unmount(abs, syscall.MNT_DETACH)
}

// firstLine is the first line of s.
func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// wantFailure checks a failed run: the exit code (0 means "any non-zero"), and a first line
// of stderr that starts with "error: " and contains every one of msgs.
func wantFailure(t *testing.T, r cliResult, code int, msgs ...string) {
	t.Helper()
	if r.code == 0 || (code != 0 && r.code != code) {
		want := "non-zero"
		if code != 0 {
			want = strconv.Itoa(code)
		}
		t.Errorf("exit code %d, want %s\nstderr:\n%s", r.code, want, r.stderr)
	}
	line := firstLine(r.stderr)
	if !strings.HasPrefix(line, "error: ") {
		t.Errorf("stderr does not start with 'error: ':\n%s", r.stderr)
	}
	for _, m := range msgs {
		if !strings.Contains(line, m) {
			t.Errorf("first line of stderr lacks %q:\n%s", m, r.stderr)
		}
	}
	if r.stdout != "" {
		t.Errorf("unexpected stdout:\n%s", r.stdout)
	}
}

// wantOneLine checks that stderr is exactly one line (no log noise, no usage hint).
func wantOneLine(t *testing.T, r cliResult) {
	t.Helper()
	if s := strings.TrimRight(r.stderr, "\n"); strings.Contains(s, "\n") {
		t.Errorf("stderr is more than one line:\n%s", r.stderr)
	}
}

func TestCLIMountDirDoesNotExist(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nope")
	r := runCLI(t, 30*time.Second, "", "--foreground", "my-bucket", dir)
	wantFailure(t, r, 0, "mount point "+dir+" does not exist")
	wantOneLine(t, r)
}

func TestCLIMountDirIsAFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, 30*time.Second, "", "my-bucket", file)
	wantFailure(t, r, 0, "mount point "+file+" is not a directory")
	wantOneLine(t, r)
}

func TestCLIUnknownFlag(t *testing.T) {
	r := runCLI(t, 30*time.Second, "", "--bogus", "my-bucket", t.TempDir())
	wantFailure(t, r, 2, "unexpected argument '--bogus' found")
	if !strings.Contains(r.stderr, "For more information, try '--help'.") {
		t.Errorf("no hint to --help:\n%s", r.stderr)
	}
}

func TestCLIInvalidPrefix(t *testing.T) {
	for _, args := range [][]string{
		{"--prefix", "logs", "my-bucket"},
		{"--prefix=a//b/", "my-bucket"},
		{"s3://my-bucket/a/../b/"},
	} {
		r := runCLI(t, 30*time.Second, "", append(args, t.TempDir())...)
		wantFailure(t, r, 2, "invalid value")
	}
}

func TestCLIMissingPositionals(t *testing.T) {
	r := runCLI(t, 30*time.Second, "", "my-bucket")
	wantFailure(t, r, 2, "the following required arguments were not provided: <BUCKET_NAME> <DIRECTORY>")
}

func TestCLIHelpAndVersion(t *testing.T) {
	r := runCLI(t, 30*time.Second, "", "--help")
	if r.code != 0 || !strings.Contains(r.stdout, "Usage: mount-s3 [OPTIONS] <BUCKET_NAME> <DIRECTORY>") || r.stderr != "" {
		t.Errorf("--help: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, 30*time.Second, "", "--version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "mount-s3 ") || r.stderr != "" {
		t.Errorf("--version: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
}

// An endpoint that refuses connections fails the start-up within seconds (not after the
// full retry budget), and the message names the endpoint. In the background form the
// reason comes back from the mount process through the readiness pipe.
func TestCLIEndpointDoesNotAnswer(t *testing.T) {
	const endpoint = "http://127.0.0.1:1"
	for _, fg := range []bool{true, false} {
		name := "background"
		if fg {
			name = "foreground"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			t.Cleanup(func() { unmountIfMounted(t, dir) })
			args := []string{"--endpoint-url", endpoint, "--force-path-style", "--region", "us-east-1", "my-bucket", dir}
			if fg {
				args = append([]string{"--foreground"}, args...)
			}
			r := runCLI(t, 30*time.Second, dir, args...)
			wantFailure(t, r, 0, endpoint)
			wantOneLine(t, r)
			if r.elapsed > 15*time.Second {
				t.Errorf("took %v to give up on an endpoint that refuses connections", r.elapsed)
			}
		})
	}
}

// A bucket that does not exist on a working endpoint fails the start-up with a message
// that says so. Mounting it would be a failure.
func TestCLIBucketDoesNotExist(t *testing.T) {
	srv, err := embedded.Start(embedded.Options{Buckets: []string{"exists"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	for _, fg := range []bool{true, false} {
		name := "background"
		if fg {
			name = "foreground"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			t.Cleanup(func() { unmountIfMounted(t, dir) })
			args := []string{"--endpoint-url", srv.URL(), "--force-path-style", "--region", "us-east-1", "missing", dir}
			if fg {
				args = append([]string{"--foreground"}, args...)
			}
			r := runCLI(t, 20*time.Second, dir, args...)
			wantFailure(t, r, 0, `"missing"`)
			if line := strings.ToLower(firstLine(r.stderr)); !strings.Contains(line, "no such bucket") && !strings.Contains(line, "does not exist") {
				t.Errorf("message does not say the bucket does not exist:\n%s", r.stderr)
			}
			wantOneLine(t, r)
			if r.elapsed > 15*time.Second {
				t.Errorf("took %v to report a missing bucket", r.elapsed)
			}
		})
	}
}

// The commands print their own help, `--help` lists them, and `status` and `sync --flush` on a
// directory that is not a mount-s3 mount fail with one line, mount nothing and write nothing
// onto it (issue 15).
func TestCLICommands(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"--help"}} {
		r := runCLI(t, 30*time.Second, "", args...)
		if r.code != 0 || !strings.Contains(r.stdout, "Commands:") || !strings.Contains(r.stdout, "sync --flush MNT") {
			t.Errorf("%v: exit %d, no command list:\n%s%s", args, r.code, r.stdout, r.stderr)
		}
	}
	for _, c := range []struct {
		args []string
		want string
	}{{[]string{"status", "--help"}, "Usage: mount-s3 status"}, {[]string{"sync", "--help"}, "Usage: mount-s3 sync --flush MNT"}} {
		r := runCLI(t, 30*time.Second, "", c.args...)
		if r.code != 0 || !strings.HasPrefix(r.stdout, c.want) {
			t.Errorf("%v: exit %d:\n%s%s", c.args, r.code, r.stdout, r.stderr)
		}
	}
	plain := t.TempDir()
	for _, args := range [][]string{{"status", plain}, {"status", "--json", plain}, {"sync", "--flush", plain}} {
		r := runCLI(t, 30*time.Second, "", args...)
		wantFailure(t, r, 1, plain+" is not the mount point of a mount-s3 mount")
		if strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("%v: more than one line:\n%s", args, r.stderr)
		}
	}
	if n, err := syscall.Listxattr(plain, make([]byte, 1024)); err == nil && n != 0 {
		t.Errorf("an extended attribute was written onto the plain directory %s", plain)
	}
	if mounted, _ := mount.IsMountPoint(plain); mounted {
		t.Errorf("status mounted something on %s", plain)
	}
}

// Start-up failures say the cause in words and the next step, in one line (issue 15): no
// credentials, an embedded store without the bucket named (a typo must not mount an empty
// bucket), an embedded store another process holds, a bucket name S3 cannot have.
func TestCLIErrorsSayWhatToDo(t *testing.T) {
	dir := t.TempDir()
	t.Cleanup(func() { unmountIfMounted(t, dir) })
	var noCreds []string
	for _, kv := range cliEnv() {
		if !strings.HasPrefix(kv, "AWS_ACCESS_KEY_ID=") && !strings.HasPrefix(kv, "AWS_SECRET_ACCESS_KEY=") {
			noCreds = append(noCreds, kv)
		}
	}
	r := runCLIEnv(t, noCreds, 30*time.Second, dir, "--foreground", "--endpoint-url", "http://127.0.0.1:1", "--force-path-style", "my-bucket", dir)
	wantFailure(t, r, 1, "no AWS credentials found", "AWS_ACCESS_KEY_ID", "--profile", "--no-sign-request")
	wantOneLine(t, r)

	r = runCLI(t, 30*time.Second, dir, "--foreground", "Not_A_Bucket", dir)
	wantFailure(t, r, 2, "'Not_A_Bucket'", "lower-case letters")

	store := t.TempDir()
	srv, err := embedded.Start(embedded.Options{Dir: store, Buckets: []string{"photos", "backups"}})
	if err != nil {
		t.Fatal(err)
	}
	r = runCLI(t, 30*time.Second, dir, "--foreground", "--embedded-store", store, "photso", dir)
	wantFailure(t, r, 1, "in use by process "+strconv.Itoa(os.Getpid()))
	wantOneLine(t, r)
	srv.Close()

	r = runCLI(t, 30*time.Second, dir, "--foreground", "--embedded-store", store, "photso", dir)
	wantFailure(t, r, 1, "bucket \"photso\" is not in the embedded store", "backups, photos", "--create-bucket")
	wantOneLine(t, r)
}
