// Package conformance holds the suites that run on real FUSE mounts over the embedded S3
// server: a pjdfstest-style table with one row per rule case and the expected result per
// mode, and end-to-end checks of attributes and reads. The fixture lives in harness/.
package conformance
