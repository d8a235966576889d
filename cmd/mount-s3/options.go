package main

import (
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mount-s3/mount-s3/impl/vfs"
	"github.com/mount-s3/mount-s3/spec/keymap"
	"github.com/mount-s3/mount-s3/spec/syncrule"
)

// options is the parsed command line.
type options struct {
	bucket, prefix, dir string

	region, endpointURL, profile, caBundle string
	forcePathStyle, noSignRequest          bool

	readOnly, foreground                bool
	uid, gid                            uint32
	fileMode, dirMode                   os.FileMode
	allowOther, allowRoot, autoUnmount  bool
	metadataTTL, negativeTTL            time.Duration
	metadataTTLSet                      bool
	cacheDir, cacheXZ                   string
	maxCacheSizeMiB                     int64
	negativeTTLSet                      bool
	debug, debugFUSE, noLog             bool
	logDirectory, embeddedStore, fsName string
	createBucket                        bool

	allowOverwrite, allowDelete           bool
	partSize, readPartSize, writePartSize int64
	uploadChecksums, storageClass         string
	sse, sseKMSKeyID                      string

	memoryTargetMiB int64
	throughputGbps  float64
	maxThreads      int

	// Sync mode (Y, C rules).
	syncDir                     string
	writeBackDelay, expireAfter time.Duration
	importThreshold             int64
	syncFlagSet                 string // the first sync-only flag given, for the error without --sync-dir
	acceptBucketWarning         bool
	bucketWarningLimit          int64
	watchOptions

	// Mountpoint's client and bucket flags.
	userAgentPrefix, expectedBucketOwner, bucketType string
	requesterPays, inferContentType                  bool
	noSmallFilePrefetch                              bool
	dualStack, transferAcceleration                  bool
	bind                                             []string
	debugCRT, logMetrics, incrementalUpload          bool
	cacheBlockSizeKiB                                int64
	otlpEndpoint, metricsAddr                        string
	otlpExportInterval                               time.Duration

	help, version bool
}

// usageError is a bad command line: printed as one line, exit code 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// flag describes one option. Names are Mountpoint's; the same names work in `-o` without
// their leading dashes, so an /etc/fstab line can say `-o allow-other,prefix=logs/`.
type flag struct {
	name    string
	short   string
	value   string // placeholder of the value in help, "" for a switch
	help    string
	apply   func(o *options, v string) error
	hidden  bool
	fstabOK bool
}

func flags() []flag {
	return append([]flag{
		{name: "prefix", value: "PREFIX", help: "Prefix inside the bucket to mount, ending in '/'", apply: func(o *options, v string) error {
			if err := keymap.ValidatePrefix(v); err != nil {
				return usagef("invalid value '%s' for '--prefix <PREFIX>': %v", v, err)
			}
			o.prefix = v
			return nil
		}},
		{name: "region", value: "REGION", help: "AWS region of the bucket", apply: func(o *options, v string) error { o.region = v; return nil }},
		{name: "endpoint-url", value: "URL", help: "S3 endpoint URL (for S3-compatible stores)", apply: func(o *options, v string) error { o.endpointURL = v; return nil }},
		{name: "force-path-style", help: "Address the bucket as ENDPOINT/BUCKET instead of BUCKET.ENDPOINT", apply: func(o *options, _ string) error { o.forcePathStyle = true; return nil }},
		{name: "profile", value: "PROFILE", help: "Credentials profile from the AWS config files", apply: func(o *options, v string) error { o.profile = v; return nil }},
		{name: "no-sign-request", help: "Send anonymous requests (public buckets)", apply: func(o *options, _ string) error { o.noSignRequest = true; return nil }},
		{name: "ca-bundle", value: "FILE", help: "PEM file of certificate authorities to trust (default: $AWS_CA_BUNDLE)", apply: func(o *options, v string) error { o.caBundle = v; return nil }},
		{name: "read-only", help: "Mount read-only", apply: func(o *options, _ string) error { o.readOnly = true; return nil }},
		{name: "foreground", short: "f", help: "Run in the foreground", apply: func(o *options, _ string) error { o.foreground = true; return nil }},
		{name: "allow-overwrite", help: "Allow replacing existing objects (open with O_TRUNC)", apply: func(o *options, _ string) error { o.allowOverwrite = true; return nil }},
		{name: "allow-delete", help: "Allow deleting objects (unlink)", apply: func(o *options, _ string) error { o.allowDelete = true; return nil }},
		{name: "part-size", value: "SIZE", help: "Part size in bytes of multipart uploads and ranged GETs [default: 8388608]", apply: func(o *options, v string) error { return parseSize(v, "part-size <SIZE>", &o.partSize) }},
		{name: "read-part-size", value: "SIZE", help: "Part size in bytes of ranged GETs [default: --part-size]", apply: func(o *options, v string) error { return parseSize(v, "read-part-size <SIZE>", &o.readPartSize) }},
		{name: "write-part-size", value: "SIZE", help: "Part size in bytes of multipart uploads [default: --part-size]", apply: func(o *options, v string) error { return parseSize(v, "write-part-size <SIZE>", &o.writePartSize) }},
		{name: "upload-checksums", value: "ALGORITHM", help: "Checksum of uploaded parts: crc32c or off [default: crc32c]", apply: func(o *options, v string) error {
			if v != "crc32c" && v != "off" {
				return usagef("invalid value '%s' for '--upload-checksums <ALGORITHM>': expected crc32c or off", v)
			}
			o.uploadChecksums = v
			return nil
		}},
		{name: "memory-target", value: "MiB", help: "Memory the mount may use for prefetched and uploading data, in MiB [default: 512]", apply: func(o *options, v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 64 {
				return usagef("invalid value '%s' for '--memory-target <MiB>': expected a number of MiB, at least 64", v)
			}
			o.memoryTargetMiB = n
			return nil
		}},
		{name: "maximum-throughput-gbps", value: "N", help: "Network throughput to aim for, in Gbit/s; sizes the number of parallel requests [default: 10]", apply: func(o *options, v string) error {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil || n <= 0 || math.IsNaN(n) || math.IsInf(n, 0) {
				return usagef("invalid value '%s' for '--maximum-throughput-gbps <N>': expected a positive number", v)
			}
			o.throughputGbps = n
			return nil
		}},
		{name: "sync-dir", value: "DIR", help: "Sync mode: keep a durable local copy in DIR with full file semantics; changes are written back to the bucket", apply: func(o *options, v string) error {
			if v == "" {
				return usagef("invalid value '' for '--sync-dir <DIR>': expected a directory")
			}
			o.syncDir = v
			return nil
		}},
		{name: "write-back-delay", value: "DURATION", help: "Sync mode: upload a changed file this long after its first unsynced change (e.g. 60, 5s, 2m) [default: " + helpDuration(syncrule.DefaultWriteBackDelay) + "]", apply: func(o *options, v string) error {
			d, err := parseDuration(v)
			if err != nil {
				return usagef("invalid value '%s' for '--write-back-delay <DURATION>': %v", v, err)
			}
			o.writeBackDelay, o.syncFlagSet = d, firstNonEmpty(o.syncFlagSet, "--write-back-delay")
			return nil
		}},
		{name: "expire-after", value: "DURATION", help: "Sync mode: drop local data not read for this long once the bucket has it (e.g. 30d, 12h) [default: " + helpDuration(syncrule.DefaultExpireAfter) + "]", apply: func(o *options, v string) error {
			d, err := parseDuration(v)
			if err != nil {
				return usagef("invalid value '%s' for '--expire-after <DURATION>': %v", v, err)
			}
			o.expireAfter, o.syncFlagSet = d, firstNonEmpty(o.syncFlagSet, "--expire-after")
			return nil
		}},
		{name: "import-threshold", value: "BYTES", help: "Sync mode: fetch files smaller than this in the background when their directory is first listed [default: " + strconv.FormatInt(syncrule.DefaultImportThreshold, 10) + "]", apply: func(o *options, v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				return usagef("invalid value '%s' for '--import-threshold <BYTES>': expected a number of bytes", v)
			}
			o.importThreshold, o.syncFlagSet = n, firstNonEmpty(o.syncFlagSet, "--import-threshold")
			return nil
		}},
		{name: "accept-bucket-warning", help: "Sync mode: mount even if the prefix holds more objects than the warning limit (125 million)", apply: func(o *options, _ string) error {
			o.acceptBucketWarning, o.syncFlagSet = true, firstNonEmpty(o.syncFlagSet, "--accept-bucket-warning")
			return nil
		}},
		{name: "bucket-warning-limit", value: "N", help: "Sync mode: how many objects under the prefix make it warn (and need --accept-bucket-warning) [default: 125000000]", apply: func(o *options, v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 1 {
				return usagef("invalid value '%s' for '--bucket-warning-limit <N>': expected a positive number", v)
			}
			o.bucketWarningLimit = n
			return nil
		}},
		{name: "max-threads", value: "N", help: "Maximum number of FUSE operations handled at once [default: 16]", apply: func(o *options, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 65536 {
				return usagef("invalid value '%s' for '--max-threads <N>': expected a number from 1 to 65536", v)
			}
			o.maxThreads = n
			return nil
		}},
		{name: "cache", value: "DIR", help: "Keep a cache of object data in DIR on local disk (survives remounts)", apply: func(o *options, v string) error { o.cacheDir = v; return nil }},
		{name: "max-cache-size", value: "MiB", help: "Largest size of the --cache directory, in MiB [default: 5% of the free space, at most 16 GiB]", apply: func(o *options, v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 1 {
				return usagef("invalid value '%s' for '--max-cache-size <MiB>': expected a positive number of MiB", v)
			}
			o.maxCacheSizeMiB = n
			return nil
		}},
		{name: "cache-xz", value: "BUCKET", help: "Share a cache of object data with other mounts in BUCKET (any S3-compatible bucket)", apply: func(o *options, v string) error {
			if !validBucketName(v) {
				return usagef("invalid value '%s' for '--cache-xz <BUCKET>': not a valid bucket name", v)
			}
			o.cacheXZ = v
			return nil
		}},
		{name: "storage-class", value: "CLASS", help: "Storage class of new objects (e.g. STANDARD, INTELLIGENT_TIERING)", apply: func(o *options, v string) error { o.storageClass = v; return nil }},
		{name: "sse", value: "aws:kms|aws:kms:dsse|AES256", help: "Server-side encryption of new objects", apply: func(o *options, v string) error {
			if v != "aws:kms" && v != "aws:kms:dsse" && v != "AES256" {
				return usagef("invalid value '%s' for '--sse <SSE>': expected aws:kms, aws:kms:dsse or AES256", v)
			}
			o.sse = v
			return nil
		}},
		{name: "sse-kms-key-id", value: "KEY_ID", help: "KMS key of --sse aws:kms", apply: func(o *options, v string) error { o.sseKMSKeyID = v; return nil }},
		{name: "uid", value: "UID", help: "Owner of all files and directories (default: the mounting user)", apply: func(o *options, v string) error { return parseID(v, "--uid <UID>", &o.uid) }},
		{name: "gid", value: "GID", help: "Group of all files and directories (default: the mounting user's group)", apply: func(o *options, v string) error { return parseID(v, "--gid <GID>", &o.gid) }},
		{name: "file-mode", value: "FILE_MODE", help: "Permission bits of files, octal [default: 0644]", apply: func(o *options, v string) error { return parseMode(v, "--file-mode <FILE_MODE>", &o.fileMode) }},
		{name: "dir-mode", value: "DIR_MODE", help: "Permission bits of directories, octal [default: 0755]", apply: func(o *options, v string) error { return parseMode(v, "--dir-mode <DIR_MODE>", &o.dirMode) }},
		{name: "allow-other", help: "Allow other users, including root, to access the mount", apply: func(o *options, _ string) error { o.allowOther = true; return nil }},
		{name: "allow-root", help: "Allow root to access the mount", apply: func(o *options, _ string) error { o.allowRoot = true; return nil }},
		{name: "auto-unmount", help: "Unmount when the process exits", apply: func(o *options, _ string) error { o.autoUnmount = true; return nil }},
		{name: "metadata-ttl", value: "SECONDS|indefinite|minimal", help: "How long metadata may be cached [default: minimal]", apply: func(o *options, v string) error {
			d, err := parseTTL(v)
			if err != nil {
				return usagef("invalid value '%s' for '--metadata-ttl <SECONDS|indefinite|minimal>': %v", v, err)
			}
			o.metadataTTL, o.metadataTTLSet = d, true
			return nil
		}},
		{name: "negative-metadata-ttl", value: "SECONDS|indefinite|minimal", help: "How long a missing name may be cached [default: the metadata TTL]", apply: func(o *options, v string) error {
			d, err := parseTTL(v)
			if err != nil {
				return usagef("invalid value '%s' for '--negative-metadata-ttl <SECONDS|indefinite|minimal>': %v", v, err)
			}
			o.negativeTTL, o.negativeTTLSet = d, true
			return nil
		}},
		{name: "debug", short: "d", help: "Log debug messages", apply: func(o *options, _ string) error { o.debug = true; return nil }},
		{name: "debug-fuse", help: "Log every FUSE operation", apply: func(o *options, _ string) error { o.debugFUSE, o.debug = true, true; return nil }},
		{name: "log-directory", short: "l", value: "DIRECTORY", help: "Write logs to files in DIRECTORY", apply: func(o *options, v string) error { o.logDirectory = v; return nil }},
		{name: "no-log", help: "Write no logs", apply: func(o *options, _ string) error { o.noLog = true; return nil }},
		{name: "fs-name", value: "NAME", help: "File system name shown in mount tables [default: mount-s3]", apply: func(o *options, v string) error { o.fsName = v; return nil }},
		{name: "embedded-store", value: "DIR", help: "Serve the bucket from an in-process S3 store persisted in DIR (no cloud account needed)", apply: func(o *options, v string) error { o.embeddedStore = v; return nil }},
		{name: "user-agent-prefix", value: "PREFIX", help: "String put before the User-Agent header of every S3 request", apply: func(o *options, v string) error { o.userAgentPrefix = v; return nil }},
		{name: "requester-pays", help: "Set the 'x-amz-request-payer' to 'requester' on S3 requests", apply: func(o *options, _ string) error { o.requesterPays = true; return nil }},
		{name: "expected-bucket-owner", value: "AWS_ACCOUNT_ID", help: "Account ID of the expected bucket owner; requests to a bucket another account owns fail with access denied", apply: func(o *options, v string) error {
			if len(v) != 12 || strings.Trim(v, "0123456789") != "" {
				return usagef("invalid value '%s' for '--expected-bucket-owner <AWS_ACCOUNT_ID>': expected a 12-digit account ID", v)
			}
			o.expectedBucketOwner = v
			return nil
		}},
		{name: "bucket-type", value: "general-purpose|directory", help: "Type of S3 bucket [default: inferred from the bucket name]", apply: func(o *options, v string) error {
			if v != "general-purpose" && v != "directory" {
				return usagef("invalid value '%s' for '--bucket-type <BUCKET_TYPE>': expected general-purpose or directory", v)
			}
			o.bucketType = v
			return nil
		}},
		{name: "no-small-file-prefetch", help: "Do not fetch small files (up to 1 MiB) whole at open, nor the next ones of a directory whose files are read in listing order", apply: func(o *options, _ string) error { o.noSmallFilePrefetch = true; return nil }},
		{name: "infer-content-type", help: "Set the Content-Type of uploaded objects from the file name's extension", apply: func(o *options, _ string) error { o.inferContentType = true; return nil }},
		{name: "dual-stack", help: "Use dual-stack (IPv4 and IPv6) endpoints when accessing S3", apply: func(o *options, _ string) error { o.dualStack = true; return nil }},
		{name: "transfer-acceleration", help: "Use S3 Transfer Acceleration when accessing S3 (it must be enabled on the bucket)", apply: func(o *options, _ string) error { o.transferAcceleration = true; return nil }},
		{name: "bind", value: "NETWORK_INTERFACE", help: "Network interface to send S3 requests through; repeat it to spread connections over several (needs Linux 5.7+ or root)", apply: func(o *options, v string) error {
			if v == "" {
				return usagef("invalid value '' for '--bind <NETWORK_INTERFACE>': expected an interface name")
			}
			o.bind = append(o.bind, v)
			return nil
		}},
		{name: "debug-crt", help: "Log every S3 request attempt and the client's retry decisions (debug level)", apply: func(o *options, _ string) error { o.debugCRT = true; return nil }},
		{name: "log-metrics", help: "Log a summary of the mount's metrics every few seconds", apply: func(o *options, _ string) error { o.logMetrics = true; return nil }},
		{name: "otlp-endpoint", value: "ENDPOINT", help: "OTLP/HTTP endpoint to push metrics to (e.g. http://localhost:4318)", apply: func(o *options, v string) error {
			if !strings.HasPrefix(v, "http://") && !strings.HasPrefix(v, "https://") {
				return usagef("invalid value '%s' for '--otlp-endpoint <ENDPOINT>': expected an http:// or https:// URL", v)
			}
			o.otlpEndpoint = v
			return nil
		}},
		{name: "otlp-export-interval", value: "SECONDS", help: "Interval between OTLP metric exports in seconds [default: 60]", apply: func(o *options, v string) error {
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil || n < 1 {
				return usagef("invalid value '%s' for '--otlp-export-interval <SECONDS>': expected a whole number of seconds, at least 1", v)
			}
			o.otlpExportInterval = time.Duration(n) * time.Second
			return nil
		}},
		{name: "metrics-addr", value: "HOST:PORT", help: "Serve Prometheus metrics at http://HOST:PORT/metrics", apply: func(o *options, v string) error {
			if _, _, err := net.SplitHostPort(v); err != nil {
				return usagef("invalid value '%s' for '--metrics-addr <HOST:PORT>': %v", v, err)
			}
			o.metricsAddr = v
			return nil
		}},
		{name: "incremental-upload", help: "Append to existing objects (S3 Express One Zone directory buckets only)", apply: func(o *options, _ string) error { o.incrementalUpload = true; return nil }},
		{name: "cache-block-size", value: "KiB", help: "Size of a cache block in KiB [default: 1024]", apply: func(o *options, v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 1 || n > 1<<20 {
				return usagef("invalid value '%s' for '--cache-block-size <KiB>': expected a number of KiB from 1 to 1048576", v)
			}
			o.cacheBlockSizeKiB = n
			return nil
		}},
		{name: "create-bucket", help: "With --embedded-store: create the bucket if the store does not have it", apply: func(o *options, _ string) error { o.createBucket = true; return nil }},
		{name: "help", short: "h", help: "Print help", apply: func(o *options, _ string) error { o.help = true; return nil }},
		{name: "version", short: "V", help: "Print version", apply: func(o *options, _ string) error { o.version = true; return nil }},
	}, watchFlags()...)
}

// parseArgs parses Mountpoint's command line: `[OPTIONS] BUCKET DIR`, options and positional
// arguments in any order, `--name value` and `--name=value`, and `-o a,b=c` (fstab form).
func parseArgs(args []string) (*options, error) {
	o := &options{metadataTTL: vfs.MinimalTTL, memoryTargetMiB: 512, throughputGbps: 10, maxThreads: 16,
		writeBackDelay: syncrule.DefaultWriteBackDelay, expireAfter: syncrule.DefaultExpireAfter, importThreshold: syncrule.DefaultImportThreshold,
		bucketWarningLimit: defaultBucketWarningLimit, uid: uint32(os.Getuid()), gid: uint32(os.Getgid())}
	table := flags()
	byName := map[string]*flag{}
	for i := range table {
		f := &table[i]
		byName["--"+f.name] = f
		if f.short != "" {
			byName["-"+f.short] = f
		}
	}

	var positional []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			positional = append(positional, args[i+1:]...)
			i = len(args)
		case a == "-o" || (strings.HasPrefix(a, "-o") && !strings.HasPrefix(a, "--")):
			v := strings.TrimPrefix(a, "-o")
			if v == "" {
				if i+1 >= len(args) {
					return nil, usagef("a value is required for '-o <OPTIONS>' but none was supplied")
				}
				i++
				v = args[i]
			}
			if err := applyFstab(o, byName, v); err != nil {
				return nil, err
			}
		case strings.HasPrefix(a, "-") && a != "-":
			name, val, hasVal := strings.Cut(a, "=")
			f, ok := byName[name]
			if !ok {
				return nil, usagef("unexpected argument '%s' found", name)
			}
			if f.value == "" {
				if hasVal {
					return nil, usagef("unexpected value '%s' for '%s' found; no more were expected", val, name)
				}
			} else if !hasVal {
				if i+1 >= len(args) {
					return nil, usagef("a value is required for '--%s <%s>' but none was supplied", f.name, f.value)
				}
				i++
				val = args[i]
			}
			if err := f.apply(o, val); err != nil {
				return nil, err
			}
		default:
			positional = append(positional, a)
		}
	}
	if o.help || o.version {
		return o, nil
	}
	switch {
	case len(positional) < 2:
		return nil, usagef("the following required arguments were not provided: <BUCKET_NAME> <DIRECTORY>")
	case len(positional) > 2:
		return nil, usagef("unexpected argument '%s' found", positional[2])
	}
	if err := o.setBucket(positional[0]); err != nil {
		return nil, err
	}
	o.dir = positional[1]
	// Only the mounting user may use a mount without --allow-other; root always may. So for
	// root --allow-root changes nothing, and for others it would need a check in every
	// operation that this program does not make.
	if o.allowRoot && !o.allowOther && os.Getuid() != 0 {
		return nil, usagef("'--allow-root' is only supported when mounting as root, where root already has access; use '--allow-other'")
	}
	if o.sseKMSKeyID != "" && o.sse != "aws:kms" && o.sse != "aws:kms:dsse" {
		return nil, usagef("'--sse-kms-key-id <KEY_ID>' needs '--sse aws:kms' or '--sse aws:kms:dsse'")
	}
	if o.endpointURL == "" && o.embeddedStore == "" {
		if err := checkAWSBucketName(o.bucket); err != nil {
			return nil, err
		}
	}
	if err := o.checkClientFlags(); err != nil {
		return nil, err
	}
	if o.maxCacheSizeMiB != 0 && o.cacheDir == "" {
		return nil, usagef("'--max-cache-size <MiB>' needs '--cache <DIR>'")
	}
	if o.syncDir == "" && o.syncFlagSet != "" {
		return nil, usagef("'%s' needs '--sync-dir <DIR>'", o.syncFlagSet)
	}
	if o.syncDir != "" {
		if o.cacheDir != "" || o.cacheXZ != "" {
			return nil, usagef("'--sync-dir <DIR>' already keeps data locally; it cannot be combined with '--cache' or '--cache-xz'")
		}
		abs, err := filepath.Abs(o.syncDir)
		if err != nil {
			return nil, usagef("invalid value '%s' for '--sync-dir <DIR>': %v", o.syncDir, err)
		}
		o.syncDir = abs
	}
	// S3: with a cache, metadata is kept for a minute unless --metadata-ttl says otherwise.
	if !o.metadataTTLSet && (o.cacheDir != "" || o.cacheXZ != "") {
		o.metadataTTL = 60 * time.Second
	}
	if !o.negativeTTLSet {
		o.negativeTTL = o.metadataTTL
	}
	return o, nil
}

// checkClientFlags applies Mountpoint's conflicts between its client, logging and cache flags,
// and refuses, with the reason, the ones that cannot apply to the buckets mount-s3 serves.
func (o *options) checkClientFlags() error {
	switch {
	case o.allowOther && o.allowRoot:
		return usagef("the argument '--allow-other' cannot be used with '--allow-root'")
	case o.partSize != 0 && (o.readPartSize != 0 || o.writePartSize != 0):
		return usagef("'--part-size' cannot be used with '--read-part-size' or '--write-part-size'")
	case o.noLog && (o.logDirectory != "" || o.debug || o.debugCRT || o.logMetrics):
		return usagef("'--no-log' cannot be used with '--log-directory', '--debug', '--debug-crt' or '--log-metrics'")
	case o.otlpExportInterval != 0 && o.otlpEndpoint == "":
		return usagef("'--otlp-export-interval <SECONDS>' needs '--otlp-endpoint <ENDPOINT>'")
	case o.cacheBlockSizeKiB != 0 && o.cacheDir == "" && o.cacheXZ == "":
		return usagef("'--cache-block-size <KiB>' needs '--cache <DIR>' or '--cache-xz <BUCKET>'")
	case o.endpointURL != "" && o.transferAcceleration:
		return usagef("'--transfer-acceleration' picks AWS's accelerate endpoint and cannot be used with '--endpoint-url'")
	case o.endpointURL != "" && o.dualStack:
		return usagef("'--dual-stack' picks AWS's dual-stack endpoint and cannot be used with '--endpoint-url'")
	case o.forcePathStyle && o.transferAcceleration:
		return usagef("'--transfer-acceleration' needs virtual-host addressing and cannot be used with '--force-path-style'")
	case o.bucketType == "directory" || o.bucketType == "" && strings.HasSuffix(o.bucket, "--x-s3"):
		return usagef("bucket %s is an S3 Express One Zone directory bucket, which mount-s3 does not serve (it needs session-based authentication); mount a general-purpose bucket", o.bucket)
	case o.autoUnmount && strings.HasPrefix(o.dir, "/dev/fd/"):
		return usagef("'--auto-unmount' cannot be used with a /dev/fd/N mount point: the caller that mounted the descriptor unmounts it")
	case o.createBucket && o.embeddedStore == "":
		return usagef("'--create-bucket' needs '--embedded-store <DIR>': mount-s3 creates buckets only in its own embedded store")
	case o.incrementalUpload:
		return usagef("'--incremental-upload' appends to objects only in S3 Express One Zone directory buckets, which mount-s3 does not serve; use '--sync-dir <DIR>' for appends and edits in place")
	}
	return nil
}

// setBucket accepts a bucket name or s3://bucket/prefix/ (K8).
func (o *options) setBucket(arg string) error {
	bucket, prefix := arg, ""
	if rest, ok := strings.CutPrefix(arg, "s3://"); ok {
		bucket, prefix, _ = strings.Cut(rest, "/")
		if prefix != "" {
			if o.prefix != "" {
				return usagef("invalid value '%s' for '<BUCKET_NAME>': a prefix is given both in the s3:// URI and with --prefix", arg)
			}
			if !strings.HasSuffix(prefix, "/") {
				prefix += "/"
			}
			if err := keymap.ValidatePrefix(prefix); err != nil {
				return usagef("invalid value '%s' for '<BUCKET_NAME>': %v", arg, err)
			}
			o.prefix = prefix
		}
	}
	if !validBucketName(bucket) {
		return usagef("invalid value '%s' for '<BUCKET_NAME>': not a valid bucket name (3-63 characters: lower-case letters, digits, '.', '-', '_')", arg)
	}
	o.bucket = bucket
	return nil
}

// checkAWSBucketName applies Amazon S3's bucket naming rules, before any request: a name S3
// cannot have would only come back as a bare 400 from HeadBucket. Other stores have their own
// rules and are left to answer for themselves.
func checkAWSBucketName(b string) error {
	bad := func(why string) error {
		return usagef("invalid value '%s' for '<BUCKET_NAME>': %s (Amazon S3 bucket names are 3-63 characters of lower-case letters, digits, '.' and '-')", b, why)
	}
	switch {
	case len(b) < 3 || len(b) > 63:
		return bad("not 3-63 characters long")
	case strings.Trim(b, "abcdefghijklmnopqrstuvwxyz0123456789.-") != "":
		return bad("it has characters other than lower-case letters, digits, '.' and '-'")
	case strings.Trim(b[:1]+b[len(b)-1:], "abcdefghijklmnopqrstuvwxyz0123456789") != "":
		return bad("it must start and end with a letter or digit")
	case strings.Contains(b, ".."):
		return bad("it has two dots in a row")
	case net.ParseIP(b) != nil:
		return bad("it is an IP address")
	}
	return nil
}

// validBucketName is a lenient check: S3-compatible stores allow more than AWS does (for
// example upper case or '_'), so only what no store accepts is refused here.
func validBucketName(b string) bool {
	if len(b) < 1 || len(b) > 255 {
		return false
	}
	for _, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// fstabIgnored are generic mount(8) options that mean nothing to this program or that the
// kernel handles; they are accepted so that an /etc/fstab line works.
var fstabIgnored = map[string]bool{
	"rw": true, "nosuid": true, "suid": true, "nodev": true, "dev": true, "exec": true, "noexec": true,
	"auto": true, "noauto": true, "user": true, "nouser": true, "users": true, "_netdev": true,
	"nofail": true, "defaults": true, "atime": true, "noatime": true, "relatime": true, "async": true,
}

func applyFstab(o *options, byName map[string]*flag, list string) error {
	for _, opt := range strings.Split(list, ",") {
		if opt == "" || fstabIgnored[opt] || strings.HasPrefix(opt, "x-") {
			continue
		}
		if opt == "ro" {
			o.readOnly = true
			continue
		}
		name, val, hasVal := strings.Cut(opt, "=")
		f, ok := byName["--"+name]
		if !ok || name == "help" || name == "version" {
			return usagef("unknown mount option '%s' in '-o %s'", name, list)
		}
		if (f.value == "") == hasVal {
			if hasVal {
				return usagef("mount option '%s' takes no value", name)
			}
			return usagef("mount option '%s' needs a value: %s=<%s>", name, name, f.value)
		}
		if err := f.apply(o, val); err != nil {
			return err
		}
	}
	return nil
}

// indefinite is the TTL of `indefinite`: a century.
const indefinite = 100 * 365 * 24 * time.Hour

// parseTTL reads Mountpoint's TTL forms: seconds, "indefinite" or "minimal".
func parseTTL(v string) (time.Duration, error) {
	switch v {
	case "minimal":
		return vfs.MinimalTTL, nil
	case "indefinite":
		return indefinite, nil
	}
	s, err := strconv.ParseFloat(v, 64)
	if err != nil || s < 0 || math.IsNaN(s) || math.IsInf(s, 0) {
		return 0, errors.New("expected a number of seconds, 'indefinite' or 'minimal'")
	}
	if s >= indefinite.Seconds() {
		return indefinite, nil // a Duration cannot hold more; it is forever either way
	}
	return time.Duration(s * float64(time.Second)), nil
}

// parseDuration reads a plain number of seconds, a Go duration ("90s", "2m", "1h30m"), or a
// number of days ("30d").
func parseDuration(v string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.ParseFloat(days, 64)
		if err != nil || n < 0 || math.IsNaN(n) || math.IsInf(n, 0) || n > 100*365 {
			return 0, errors.New("expected a duration such as 60, 5s, 2m, 12h or 30d")
		}
		return time.Duration(n * 24 * float64(time.Hour)), nil
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if s < 0 || math.IsNaN(s) || math.IsInf(s, 0) || s > 100*365*24*3600 {
			return 0, errors.New("expected a duration such as 60, 5s, 2m, 12h or 30d")
		}
		return time.Duration(s * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, errors.New("expected a duration such as 60, 5s, 2m, 12h or 30d")
	}
	return d, nil
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// parseSize reads a size in bytes; S3 parts are between 5 MiB and 5 GiB.
func parseSize(v, what string, dst *int64) error {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 5<<20 || n > 5<<30 {
		return usagef("invalid value '%s' for '--%s': expected a number of bytes between 5242880 (5 MiB) and 5368709120 (5 GiB)", v, what)
	}
	*dst = n
	return nil
}

func parseID(v, what string, dst *uint32) error {
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil {
		return usagef("invalid value '%s' for '--%s': expected a number", v, strings.TrimPrefix(what, "--"))
	}
	*dst = uint32(n)
	return nil
}

func parseMode(v, what string, dst *os.FileMode) error {
	n, err := strconv.ParseUint(v, 8, 32)
	if err != nil || n > 0o777 {
		return usagef("invalid value '%s' for '--%s': expected octal permission bits such as 0644", v, strings.TrimPrefix(what, "--"))
	}
	*dst = os.FileMode(n)
	return nil
}

// usage is the --help text.
// commandsHelp lists the subcommands; each has its own --help.
const commandsHelp = `  status [--json] MNT     What the mount at MNT is and what it has not written back yet
  sync --flush MNT        Write back every change of the sync-mode mount at MNT now
  sync --recover SYNC_DIR Set aside a damaged sync dir, keeping every data file
  help                    Print this help
`

func usage() string {
	var b strings.Builder
	b.WriteString("Mount an S3 bucket as a local file system\n\nUsage: mount-s3 [OPTIONS] <BUCKET_NAME> <DIRECTORY>\n       mount-s3 <COMMAND> ...\n\n")
	b.WriteString("Commands:\n" + commandsHelp + "\n")
	b.WriteString("Arguments:\n  <BUCKET_NAME>  Name of the bucket to mount, or s3://BUCKET/PREFIX/ (a bucket named like a command: s3://status)\n" +
		"  <DIRECTORY>    Directory to mount the bucket at, or /dev/fd/N: a FUSE descriptor the caller mounted\n\nOptions:\n")
	for _, f := range flags() {
		if f.hidden {
			continue
		}
		left := "    --" + f.name
		if f.short != "" {
			left = "-" + f.short + ", --" + f.name
		}
		if f.value != "" {
			left += " <" + f.value + ">"
		}
		fmt.Fprintf(&b, "  %-44s %s\n", left, f.help)
	}
	b.WriteString("  -o <OPTIONS>                                 Options as in /etc/fstab: flag names without dashes, comma separated\n")
	return b.String()
}

// helpDuration writes a default duration the way the options take it: whole days as "30d",
// otherwise in seconds ("60s"), so the help shows the values syncrule defines.
func helpDuration(d time.Duration) string {
	if d >= 24*time.Hour && d%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	}
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "s"
}
