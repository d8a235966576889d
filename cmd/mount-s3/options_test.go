package main

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mount-s3/mount-s3/impl/vfs"
)

// parsed is what parseArgs must return for `BUCKET DIR` plus the flags of one row: the
// options of the plain command line (whose defaults TestParseArgsDefaults pins) with only
// what change sets changed. Starting from the plain command line keeps the table valid when
// new flags with their own defaults are added.
func parsed(bucket, dir string, change func(o *options)) *options {
	o, err := parseArgs([]string{bucket, dir})
	if err != nil {
		panic(err)
	}
	if change != nil {
		change(o)
	}
	return o
}

// The defaults of a plain `mount-s3 BUCKET DIR` (S3, S9).
func TestParseArgsDefaults(t *testing.T) {
	o, err := parseArgs([]string{"my-bucket", "/mnt"})
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		what      string
		got, want any
	}{
		{"bucket", o.bucket, "my-bucket"},
		{"dir", o.dir, "/mnt"},
		{"prefix", o.prefix, ""},
		{"metadata TTL (minimal)", o.metadataTTL, vfs.MinimalTTL},
		{"minimal is one second", vfs.MinimalTTL, time.Second},
		{"negative TTL follows the metadata TTL", o.negativeTTL, vfs.MinimalTTL},
		{"negative TTL not set", o.negativeTTLSet, false},
		{"uid is the mounting user's", o.uid, uint32(os.Getuid())},
		{"gid is the mounting user's", o.gid, uint32(os.Getgid())},
		{"file mode (0 = the core's 0644)", o.fileMode, os.FileMode(0)},
		{"dir mode (0 = the core's 0755)", o.dirMode, os.FileMode(0)},
		{"read-only", o.readOnly, false},
		{"foreground", o.foreground, false},
		{"allow-other", o.allowOther, false},
		{"endpoint", o.endpointURL, ""},
		{"region", o.region, ""},
		{"help", o.help, false},
		{"version", o.version, false},
		{"max-threads (Mountpoint's default)", o.maxThreads, 16},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s: got %v, want %v", c.what, c.got, c.want)
		}
	}
}

func TestParseArgs(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    *options // nil when an error is expected
		wantErr string   // a substring of the error
	}{
		// Bucket forms (K8: the prefix is the root).
		{name: "bucket name", args: []string{"my-bucket", "/mnt"}, want: parsed("my-bucket", "/mnt", nil)},
		{name: "s3:// without a prefix", args: []string{"s3://my-bucket", "/mnt"}, want: parsed("my-bucket", "/mnt", nil)},
		{name: "s3:// with only a slash", args: []string{"s3://my-bucket/", "/mnt"}, want: parsed("my-bucket", "/mnt", nil)},
		{name: "s3:// with a prefix", args: []string{"s3://my-bucket/logs/", "/mnt"},
			want: parsed("my-bucket", "/mnt", func(o *options) { o.prefix = "logs/" })},
		{name: "s3:// prefix without trailing slash gets one", args: []string{"s3://my-bucket/logs", "/mnt"},
			want: parsed("my-bucket", "/mnt", func(o *options) { o.prefix = "logs/" })},
		{name: "s3:// nested prefix without trailing slash", args: []string{"s3://my-bucket/a/b", "/mnt"},
			want: parsed("my-bucket", "/mnt", func(o *options) { o.prefix = "a/b/" })},
		{name: "s3:// prefix with an empty component", args: []string{"s3://my-bucket/a//b/", "/mnt"}, wantErr: "invalid value 's3://my-bucket/a//b/' for '<BUCKET_NAME>'"},
		{name: "s3:// prefix with a dot component", args: []string{"s3://my-bucket/a/../", "/mnt"}, wantErr: "invalid component"},
		{name: "s3:// without a bucket", args: []string{"s3://", "/mnt"}, wantErr: "not a valid bucket name"},
		{name: "bucket name with a space", args: []string{"my bucket", "/mnt"}, wantErr: "not a valid bucket name"},

		// --prefix.
		{name: "--prefix", args: []string{"--prefix", "logs/", "bkt", "/mnt"},
			want: parsed("bkt", "/mnt", func(o *options) { o.prefix = "logs/" })},
		{name: "--prefix=", args: []string{"--prefix=a/b/", "bkt", "/mnt"},
			want: parsed("bkt", "/mnt", func(o *options) { o.prefix = "a/b/" })},
		{name: "--prefix must end in /", args: []string{"--prefix", "logs", "bkt", "/mnt"}, wantErr: `invalid value 'logs' for '--prefix <PREFIX>': prefix "logs" must end in "/"`},
		{name: "--prefix with an empty component", args: []string{"--prefix", "a//", "bkt", "/mnt"}, wantErr: "invalid value 'a//' for '--prefix <PREFIX>'"},
		{name: "--prefix of only a slash", args: []string{"--prefix", "/", "bkt", "/mnt"}, wantErr: "invalid value '/' for '--prefix <PREFIX>'"},
		{name: "--prefix with an s3:// bucket that has none", args: []string{"--prefix", "p/", "s3://bkt/", "/mnt"},
			want: parsed("bkt", "/mnt", func(o *options) { o.prefix = "p/" })},
		{name: "both prefix forms", args: []string{"--prefix", "p/", "s3://bkt/q/", "/mnt"}, wantErr: "a prefix is given both in the s3:// URI and with --prefix"},
		{name: "both prefix forms, flag last", args: []string{"s3://bkt/q/", "/mnt", "--prefix=p/"}, wantErr: "a prefix is given both in the s3:// URI and with --prefix"},
		{name: "both prefix forms, the same prefix", args: []string{"s3://bkt/p/", "--prefix", "p/", "/mnt"}, wantErr: "a prefix is given both"},

		// Flags anywhere among the positionals, in both value forms.
		{name: "switch before", args: []string{"--read-only", "bkt", "/mnt"}, want: parsed("bkt", "/mnt", func(o *options) { o.readOnly = true })},
		{name: "switch between", args: []string{"bkt", "--read-only", "/mnt"}, want: parsed("bkt", "/mnt", func(o *options) { o.readOnly = true })},
		{name: "switch after", args: []string{"bkt", "/mnt", "--read-only"}, want: parsed("bkt", "/mnt", func(o *options) { o.readOnly = true })},
		{name: "value flag between", args: []string{"bkt", "--region", "eu-west-1", "/mnt"}, want: parsed("bkt", "/mnt", func(o *options) { o.region = "eu-west-1" })},
		{name: "value flag after, = form", args: []string{"bkt", "/mnt", "--region=eu-west-1"}, want: parsed("bkt", "/mnt", func(o *options) { o.region = "eu-west-1" })},
		{name: "= form keeps later = signs", args: []string{"--endpoint-url=http://h:9000/?a=b", "bkt", "/mnt"},
			want: parsed("bkt", "/mnt", func(o *options) { o.endpointURL = "http://h:9000/?a=b" })},
		{name: "endpoint flags", args: []string{"--endpoint-url", "http://127.0.0.1:9000", "--force-path-style", "--no-sign-request", "bkt", "/mnt"},
			want: parsed("bkt", "/mnt", func(o *options) {
				o.endpointURL, o.forcePathStyle, o.noSignRequest = "http://127.0.0.1:9000", true, true
			})},
		{name: "credential and log flags", args: []string{"--profile", "dev", "--ca-bundle=/ca.pem", "--debug", "--log-directory", "/var/log/m", "--fs-name", "s3fs", "bkt", "/mnt"},
			want: parsed("bkt", "/mnt", func(o *options) {
				o.profile, o.caBundle, o.debug, o.logDirectory, o.fsName = "dev", "/ca.pem", true, "/var/log/m", "s3fs"
			})},
		{name: "--debug-fuse implies --debug", args: []string{"--debug-fuse", "bkt", "/mnt"},
			want: parsed("bkt", "/mnt", func(o *options) { o.debugFUSE, o.debug = true, true })},
		{name: "--embedded-store", args: []string{"--embedded-store", "/var/lib/s3", "bkt", "/mnt"},
			want: parsed("bkt", "/mnt", func(o *options) { o.embeddedStore = "/var/lib/s3" })},
		{name: "-f", args: []string{"-f", "bkt", "/mnt"}, want: parsed("bkt", "/mnt", func(o *options) { o.foreground = true })},
		{name: "--foreground after", args: []string{"bkt", "/mnt", "--foreground"}, want: parsed("bkt", "/mnt", func(o *options) { o.foreground = true })},
		{name: "allow flags", args: []string{"--allow-other", "--auto-unmount", "bkt", "/mnt"},
			want: parsed("bkt", "/mnt", func(o *options) { o.allowOther, o.autoUnmount = true, true })},
		{name: "-- ends the flags", args: []string{"--read-only", "--", "bkt", "/mnt"}, want: parsed("bkt", "/mnt", func(o *options) { o.readOnly = true })},

		// -o, the /etc/fstab form.
		{name: "-o generic options are ignored", args: []string{"bkt", "/mnt", "-o", "rw,nosuid,nodev,_netdev,nofail"}, want: parsed("bkt", "/mnt", nil)},
		{name: "-o more generic options", args: []string{"-o", "defaults,noatime,noauto,x-systemd.automount,exec", "bkt", "/mnt"}, want: parsed("bkt", "/mnt", nil)},
		{name: "-o ro is --read-only", args: []string{"bkt", "/mnt", "-o", "ro"}, want: parsed("bkt", "/mnt", func(o *options) { o.readOnly = true })},
		{name: "-o attached value", args: []string{"-oro,nofail", "bkt", "/mnt"}, want: parsed("bkt", "/mnt", func(o *options) { o.readOnly = true })},
		{name: "-o allow-other", args: []string{"bkt", "/mnt", "-o", "rw,allow-other,_netdev"}, want: parsed("bkt", "/mnt", func(o *options) { o.allowOther = true })},
		{name: "-o prefix=", args: []string{"bkt", "/mnt", "-o", "prefix=logs/"}, want: parsed("bkt", "/mnt", func(o *options) { o.prefix = "logs/" })},
		{name: "-o uid= gid= file-mode=", args: []string{"bkt", "/mnt", "-o", "uid=1000,gid=1001,file-mode=0600,dir-mode=0700"},
			want: parsed("bkt", "/mnt", func(o *options) { o.uid, o.gid, o.fileMode, o.dirMode = 1000, 1001, 0o600, 0o700 })},
		{name: "-o twice", args: []string{"-o", "ro", "bkt", "/mnt", "-o", "allow-other"}, want: parsed("bkt", "/mnt", func(o *options) { o.readOnly, o.allowOther = true, true })},
		{name: "-o fstab line as Mountpoint documents it", args: []string{"s3://bkt/p/", "/mnt", "-o", "_netdev,nosuid,nodev,nofail,rw,allow-other"},
			want: parsed("bkt", "/mnt", func(o *options) { o.prefix, o.allowOther = "p/", true })},
		{name: "-o prefix= is validated", args: []string{"bkt", "/mnt", "-o", "prefix=logs"}, wantErr: "must end in"},
		{name: "-o prefix= and s3:// prefix", args: []string{"s3://bkt/q/", "/mnt", "-o", "prefix=p/"}, wantErr: "a prefix is given both"},
		{name: "-o unknown option", args: []string{"bkt", "/mnt", "-o", "rw,bogus"}, wantErr: "unknown mount option 'bogus' in '-o rw,bogus'"},
		{name: "-o unknown option with a value", args: []string{"bkt", "/mnt", "-o", "bogus=1"}, wantErr: "unknown mount option 'bogus'"},
		{name: "-o help is not an option", args: []string{"bkt", "/mnt", "-o", "help"}, wantErr: "unknown mount option 'help'"},
		{name: "-o switch with a value", args: []string{"bkt", "/mnt", "-o", "allow-other=yes"}, wantErr: "mount option 'allow-other' takes no value"},
		{name: "-o value option without a value", args: []string{"bkt", "/mnt", "-o", "uid"}, wantErr: "mount option 'uid' needs a value: uid=<UID>"},
		{name: "-o bad uid", args: []string{"bkt", "/mnt", "-o", "uid=alice"}, wantErr: "invalid value 'alice' for '--uid <UID>'"},
		{name: "-o without a list", args: []string{"bkt", "/mnt", "-o"}, wantErr: "a value is required for '-o <OPTIONS>' but none was supplied"},

		// Unknown flags and wrong arity.
		{name: "unknown flag", args: []string{"--bogus", "bkt", "/mnt"}, wantErr: "unexpected argument '--bogus' found"},
		{name: "unknown flag with =", args: []string{"bkt", "/mnt", "--bogus=1"}, wantErr: "unexpected argument '--bogus' found"},
		{name: "unknown short flag", args: []string{"-x", "bkt", "/mnt"}, wantErr: "unexpected argument '-x' found"},
		{name: "switch given a value", args: []string{"--read-only=yes", "bkt", "/mnt"}, wantErr: "unexpected value 'yes' for '--read-only' found"},
		{name: "value flag at the end without a value", args: []string{"bkt", "/mnt", "--region"}, wantErr: "a value is required for '--region <REGION>' but none was supplied"},
		{name: "no positionals", args: nil, wantErr: "the following required arguments were not provided: <BUCKET_NAME> <DIRECTORY>"},
		{name: "only flags", args: []string{"--read-only", "-f"}, wantErr: "the following required arguments were not provided"},
		{name: "only the bucket", args: []string{"b"}, wantErr: "the following required arguments were not provided"},
		{name: "too many positionals", args: []string{"bkt", "/mnt", "extra"}, wantErr: "unexpected argument 'extra' found"},

		// S3: metadata TTLs.
		{name: "--metadata-ttl minimal", args: []string{"--metadata-ttl", "minimal", "bkt", "/mnt"}, want: parsed("bkt", "/mnt", nil)},
		{name: "--metadata-ttl minimal is 1s", args: []string{"--metadata-ttl=minimal", "bkt", "/mnt"},
			want: parsed("bkt", "/mnt", func(o *options) { o.metadataTTL, o.negativeTTL = time.Second, time.Second })},
		{name: "--metadata-ttl indefinite", args: []string{"--metadata-ttl", "indefinite", "bkt", "/mnt"},
			want: parsed("bkt", "/mnt", func(o *options) { o.metadataTTL, o.negativeTTL = indefinite, indefinite })},
		{name: "--metadata-ttl seconds, negative TTL follows", args: []string{"--metadata-ttl", "60", "bkt", "/mnt"},
			want: parsed("bkt", "/mnt", func(o *options) { o.metadataTTL, o.negativeTTL = time.Minute, time.Minute })},
		{name: "--metadata-ttl 0", args: []string{"--metadata-ttl", "0", "bkt", "/mnt"},
			want: parsed("bkt", "/mnt", func(o *options) { o.metadataTTL, o.negativeTTL = 0, 0 })},
		{name: "--metadata-ttl fraction", args: []string{"--metadata-ttl", "1.5", "bkt", "/mnt"},
			want: parsed("bkt", "/mnt", func(o *options) { o.metadataTTL, o.negativeTTL = 1500*time.Millisecond, 1500*time.Millisecond })},
		{name: "--metadata-ttl invalid word", args: []string{"--metadata-ttl", "forever", "bkt", "/mnt"},
			wantErr: "invalid value 'forever' for '--metadata-ttl <SECONDS|indefinite|minimal>': expected a number of seconds, 'indefinite' or 'minimal'"},
		{name: "--metadata-ttl negative", args: []string{"--metadata-ttl", "-1", "bkt", "/mnt"}, wantErr: "invalid value '-1' for '--metadata-ttl"},
		{name: "--metadata-ttl with a unit", args: []string{"--metadata-ttl", "5s", "bkt", "/mnt"}, wantErr: "invalid value '5s' for '--metadata-ttl"},
		{name: "--negative-metadata-ttl before --metadata-ttl", args: []string{"--negative-metadata-ttl", "5", "--metadata-ttl", "60", "bkt", "/mnt"},
			want: parsed("bkt", "/mnt", func(o *options) {
				o.metadataTTL, o.negativeTTL, o.negativeTTLSet = time.Minute, 5*time.Second, true
			})},
		{name: "--negative-metadata-ttl 0 is kept", args: []string{"--metadata-ttl", "60", "--negative-metadata-ttl", "0", "bkt", "/mnt"},
			want: parsed("bkt", "/mnt", func(o *options) { o.metadataTTL, o.negativeTTL, o.negativeTTLSet = time.Minute, 0, true })},
		{name: "--negative-metadata-ttl invalid", args: []string{"--negative-metadata-ttl", "x", "bkt", "/mnt"}, wantErr: "invalid value 'x' for '--negative-metadata-ttl"},

		// S9: modes and owners.
		{name: "--file-mode with a leading 0", args: []string{"--file-mode", "0600", "bkt", "/mnt"}, want: parsed("bkt", "/mnt", func(o *options) { o.fileMode = 0o600 })},
		{name: "--file-mode without a leading 0", args: []string{"--file-mode=640", "bkt", "/mnt"}, want: parsed("bkt", "/mnt", func(o *options) { o.fileMode = 0o640 })},
		{name: "--dir-mode", args: []string{"--dir-mode", "0750", "bkt", "/mnt"}, want: parsed("bkt", "/mnt", func(o *options) { o.dirMode = 0o750 })},
		{name: "--file-mode not octal", args: []string{"--file-mode", "0999", "bkt", "/mnt"}, wantErr: "invalid value '0999' for '--file-mode <FILE_MODE>': expected octal permission bits"},
		{name: "--file-mode beyond permission bits", args: []string{"--file-mode", "1777", "bkt", "/mnt"}, wantErr: "invalid value '1777' for '--file-mode <FILE_MODE>'"},
		{name: "--file-mode symbolic", args: []string{"--file-mode", "rw-r--r--", "bkt", "/mnt"}, wantErr: "invalid value 'rw-r--r--' for '--file-mode"},
		{name: "--dir-mode invalid", args: []string{"--dir-mode", "8", "bkt", "/mnt"}, wantErr: "invalid value '8' for '--dir-mode <DIR_MODE>'"},
		{name: "--uid and --gid", args: []string{"--uid", "0", "--gid=42", "bkt", "/mnt"}, want: parsed("bkt", "/mnt", func(o *options) { o.uid, o.gid = 0, 42 })},
		{name: "--uid not a number", args: []string{"--uid", "root", "bkt", "/mnt"}, wantErr: "invalid value 'root' for '--uid <UID>': expected a number"},
		{name: "--gid negative", args: []string{"--gid=-1", "bkt", "/mnt"}, wantErr: "invalid value '-1' for '--gid <GID>'"},

		{name: "--max-threads", args: []string{"--max-threads", "4", "bkt", "/mnt"}, want: parsed("bkt", "/mnt", func(o *options) { o.maxThreads = 4 })},
		{name: "--max-threads in -o", args: []string{"-o", "max-threads=64", "bkt", "/mnt"}, want: parsed("bkt", "/mnt", func(o *options) { o.maxThreads = 64 })},
		{name: "--max-threads zero", args: []string{"--max-threads", "0", "bkt", "/mnt"}, wantErr: "invalid value '0' for '--max-threads <N>'"},
		{name: "--max-threads not a number", args: []string{"--max-threads=many", "bkt", "/mnt"}, wantErr: "invalid value 'many' for '--max-threads <N>'"},

		// --help and --version need no positionals.
		{name: "--help alone", args: []string{"--help"}, want: &options{help: true}},
		{name: "-h alone", args: []string{"-h"}, want: &options{help: true}},
		{name: "--version alone", args: []string{"--version"}, want: &options{version: true}},
		{name: "-V alone", args: []string{"-V"}, want: &options{version: true}},
		{name: "--help with one positional", args: []string{"b", "--help"}, want: &options{help: true}},
		{name: "--help with too many positionals", args: []string{"a", "b", "c", "--help"}, want: &options{help: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseArgs(tt.args)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("parseArgs(%q) = %+v, want an error containing %q", tt.args, *got, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseArgs(%q) error %q, want it to contain %q", tt.args, err, tt.wantErr)
				}
				if _, ok := err.(usageError); !ok {
					t.Errorf("parseArgs(%q) error is a %T, want a usageError (exit code 2)", tt.args, err)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("parseArgs(%q) error %q is not one line", tt.args, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseArgs(%q): %v", tt.args, err)
			}
			want := tt.want
			if want.help || want.version {
				// Only the request for help or version matters; the rest is whatever was parsed.
				if got.help != want.help || got.version != want.version {
					t.Fatalf("parseArgs(%q): help=%v version=%v, want help=%v version=%v", tt.args, got.help, got.version, want.help, want.version)
				}
				return
			}
			// Whether --metadata-ttl was given is bookkeeping for the cache default; the TTL
			// itself is compared.
			w := *want
			w.metadataTTLSet = got.metadataTTLSet
			if !reflect.DeepEqual(*got, w) {
				t.Fatalf("parseArgs(%q)\n got %+v\nwant %+v", tt.args, *got, w)
			}
		})
	}
}

// The arguments are not modified, so daemonize can pass them to the background process as
// they were given.
func TestParseArgsKeepsArgs(t *testing.T) {
	args := []string{"-o", "ro,prefix=p/", "--metadata-ttl=5", "bkt", "/mnt", "-f"}
	orig := append([]string(nil), args...)
	if _, err := parseArgs(args); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(args, orig) {
		t.Fatalf("args changed: %q, was %q", args, orig)
	}
}

// A TTL that is not a finite number of seconds, or too large for a time.Duration, must be
// refused or mean a long TTL; it must never silently become a negative TTL (which caches
// nothing, the opposite of what was asked).
func TestMetadataTTLOutOfRange(t *testing.T) {
	for _, tt := range []struct {
		value      string
		mustReject bool // not a number at all
	}{
		{"NaN", true}, {"nan", true}, {"Inf", false}, {"+inf", false}, {"infinity", false}, {"1e10", false}, {"1e300", false},
	} {
		for _, flagName := range []string{"--metadata-ttl", "--negative-metadata-ttl"} {
			o, err := parseArgs([]string{flagName, tt.value, "bkt", "/mnt"})
			if err != nil {
				continue // refusing it is fine
			}
			got := o.metadataTTL
			if flagName == "--negative-metadata-ttl" {
				got = o.negativeTTL
			}
			switch {
			case tt.mustReject:
				t.Errorf("%s %s accepted as %v, want an error", flagName, tt.value, got)
			case got < time.Hour:
				t.Errorf("%s %s parsed to %v, want an error or a long TTL", flagName, tt.value, got)
			}
		}
	}
}

// The help text names every flag, with Mountpoint's spelling, and the -o form.
func TestUsageListsFlags(t *testing.T) {
	u := usage()
	for _, want := range []string{"Usage: mount-s3 [OPTIONS] <BUCKET_NAME> <DIRECTORY>", "-f, --foreground", "-o <OPTIONS>",
		"--prefix <PREFIX>", "--metadata-ttl <SECONDS|indefinite|minimal>", "--file-mode <FILE_MODE>"} {
		if !strings.Contains(u, want) {
			t.Errorf("usage lacks %q:\n%s", want, u)
		}
	}
	for _, f := range flags() {
		if !strings.Contains(u, "--"+f.name) {
			t.Errorf("usage lacks --%s", f.name)
		}
	}
}

// S3: a cache makes the default metadata TTL a minute; an explicit TTL wins.
func TestCacheMetadataTTL(t *testing.T) {
	o, err := parseArgs([]string{"--cache", "/tmp/c", "bkt", "/mnt"})
	if err != nil || o.metadataTTL != 60*time.Second || o.negativeTTL != 60*time.Second {
		t.Fatalf("--cache: ttl %v/%v, err %v; want 60s", o.metadataTTL, o.negativeTTL, err)
	}
	o, err = parseArgs([]string{"--cache", "/tmp/c", "--metadata-ttl", "minimal", "bkt", "/mnt"})
	if err != nil || o.metadataTTL != time.Second {
		t.Fatalf("--cache --metadata-ttl minimal: ttl %v, err %v; want 1s", o.metadataTTL, err)
	}
	if _, err := parseArgs([]string{"--max-cache-size", "10", "bkt", "/mnt"}); err == nil {
		t.Fatal("--max-cache-size without --cache accepted")
	}
}

// Every Mountpoint flag is accepted with Mountpoint's name and value form, on the command line
// and as an fstab `-o` option, and sets what it says; the ones that cannot apply fail with
// one line that says why.
func TestMountpointFlags(t *testing.T) {
	tests := []struct {
		cli   []string // the command-line form
		fstab string   // the same as an -o option
		check func(o *options) bool
	}{
		{[]string{"--user-agent-prefix", "csi/1.0"}, "user-agent-prefix=csi/1.0", func(o *options) bool { return o.userAgentPrefix == "csi/1.0" }},
		{[]string{"--requester-pays"}, "requester-pays", func(o *options) bool { return o.requesterPays }},
		{[]string{"--expected-bucket-owner", "111122223333"}, "expected-bucket-owner=111122223333", func(o *options) bool { return o.expectedBucketOwner == "111122223333" }},
		{[]string{"--bucket-type", "general-purpose"}, "bucket-type=general-purpose", func(o *options) bool { return o.bucketType == "general-purpose" }},
		{[]string{"--infer-content-type"}, "infer-content-type", func(o *options) bool { return o.inferContentType }},
		{[]string{"--dual-stack"}, "dual-stack", func(o *options) bool { return o.dualStack }},
		{[]string{"--transfer-acceleration"}, "transfer-acceleration", func(o *options) bool { return o.transferAcceleration }},
		{[]string{"--bind", "eth0", "--bind", "eth1"}, "bind=eth0,bind=eth1", func(o *options) bool { return reflect.DeepEqual(o.bind, []string{"eth0", "eth1"}) }},
		{[]string{"--debug-crt"}, "debug-crt", func(o *options) bool { return o.debugCRT }},
		{[]string{"--log-metrics"}, "log-metrics", func(o *options) bool { return o.logMetrics }},
		{[]string{"--otlp-endpoint", "http://127.0.0.1:4318"}, "otlp-endpoint=http://127.0.0.1:4318", func(o *options) bool { return o.otlpEndpoint == "http://127.0.0.1:4318" }},
		{[]string{"--otlp-endpoint", "http://h:4318", "--otlp-export-interval", "5"}, "otlp-endpoint=http://h:4318,otlp-export-interval=5", func(o *options) bool { return o.otlpExportInterval == 5*time.Second }},
		{[]string{"--cache", "/c", "--cache-block-size", "256"}, "cache=/c,cache-block-size=256", func(o *options) bool { return o.cacheBlockSizeKiB == 256 }},
		{[]string{"-d", "-l", "/logs"}, "debug,log-directory=/logs", func(o *options) bool { return o.debug && o.logDirectory == "/logs" }},
	}
	for _, tt := range tests {
		for _, args := range [][]string{append(append([]string{}, tt.cli...), "bkt", "/mnt"), {"bkt", "/mnt", "-o", tt.fstab}} {
			o, err := parseArgs(args)
			if err != nil {
				t.Errorf("parseArgs(%q): %v", args, err)
				continue
			}
			if !tt.check(o) {
				t.Errorf("parseArgs(%q) did not set what the flag says: %+v", args, *o)
			}
		}
	}

	refused := []struct {
		args []string
		want string
	}{
		{[]string{"--incremental-upload"}, "'--incremental-upload' appends to objects only in S3 Express One Zone directory buckets"},
		{[]string{"--bucket-type", "directory"}, "S3 Express One Zone directory bucket, which mount-s3 does not serve"},
		{[]string{"--bucket-type", "express"}, "expected general-purpose or directory"},
		{[]string{"--expected-bucket-owner", "me"}, "expected a 12-digit account ID"},
		{[]string{"--otlp-export-interval", "5"}, "needs '--otlp-endpoint <ENDPOINT>'"},
		{[]string{"--otlp-endpoint", "localhost:4318"}, "expected an http:// or https:// URL"},
		{[]string{"--cache-block-size", "64"}, "needs '--cache <DIR>' or '--cache-xz <BUCKET>'"},
		{[]string{"--no-log", "--debug-crt"}, "'--no-log' cannot be used"},
		{[]string{"--no-log", "--log-metrics"}, "'--no-log' cannot be used"},
		{[]string{"--endpoint-url", "http://h", "--transfer-acceleration"}, "cannot be used with '--endpoint-url'"},
		{[]string{"--endpoint-url", "http://h", "--dual-stack"}, "cannot be used with '--endpoint-url'"},
		{[]string{"--force-path-style", "--transfer-acceleration"}, "cannot be used with '--force-path-style'"},
		{[]string{"--allow-other", "--allow-root"}, "'--allow-other' cannot be used with '--allow-root'"},
		{[]string{"--part-size", "8388608", "--read-part-size", "8388608"}, "'--part-size' cannot be used with"},
	}
	for _, tt := range refused {
		args := append(append([]string{}, tt.args...), "bkt", "/mnt")
		_, err := parseArgs(args)
		if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("parseArgs(%q) = %v, want one line containing %q", args, err, tt.want)
		}
	}
	if _, err := parseArgs([]string{"--auto-unmount", "bkt", "/dev/fd/3"}); err == nil || !strings.Contains(err.Error(), "/dev/fd/N") {
		t.Errorf("--auto-unmount with /dev/fd/3: %v", err)
	}
	if _, err := parseArgs([]string{"my-bucket--use1-az4--x-s3", "/mnt"}); err == nil || !strings.Contains(err.Error(), "directory bucket") {
		t.Errorf("a directory bucket's name: %v", err)
	}
}

// mount(8)'s helper call becomes the fstab form of the command line.
func TestHelperArgs(t *testing.T) {
	got, fake := helperArgs([]string{"s3://logs/app/", "/mnt/logs", "-n", "-o", "rw,nosuid,nodev,_netdev,nofail,allow-delete", "-t", "fuse.mount-s3"})
	want := []string{"s3://logs/app/", "/mnt/logs", "-o", "rw,nosuid,nodev,_netdev,nofail,allow-delete"}
	if fake || !reflect.DeepEqual(got, want) {
		t.Fatalf("helperArgs = %q (fake %v), want %q", got, fake, want)
	}
	o, err := parseArgs(got)
	if err != nil || o.bucket != "logs" || o.prefix != "app/" || !o.allowDelete || o.dir != "/mnt/logs" {
		t.Fatalf("parsed %+v, %v", o, err)
	}
	if _, fake := helperArgs([]string{"b", "/m", "-fv"}); !fake {
		t.Error("-f (fake) not seen")
	}
	if !isHelper("/sbin/mount.mount-s3") || !isHelper("/sbin/mount.fuse.mount-s3") || isHelper("/usr/bin/mount-s3") {
		t.Error("helper names")
	}
}
