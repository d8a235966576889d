// Command demo-seed fills a bucket of the embedded store in DIR with sample objects for
// `make demo`: a README, a small tree of photos and logs, and one 64 MiB object of random
// bytes to copy and compare. It is idempotent.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"

	"github.com/mount-s3/mount-s3/impl/s3"
	"github.com/mount-s3/mount-s3/impl/s3/embedded"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: demo-seed STORE_DIR BUCKET")
		os.Exit(2)
	}
	if err := seed(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "demo-seed:", err)
		os.Exit(1)
	}
}

func seed(dir, bucket string) error {
	srv, err := embedded.Start(embedded.Options{Dir: dir, Buckets: []string{bucket}})
	if err != nil {
		return err
	}
	defer srv.Close()
	ctx := context.Background()
	store, err := s3.NewSDKStore(ctx, s3.Config{Bucket: bucket, EndpointURL: srv.URL(), ForcePathStyle: true, StaticCredentials: embedded.Credentials})
	if err != nil {
		return err
	}
	objects := map[string][]byte{
		"README.txt":                 []byte("Hello from mount-s3. Every file here is an object in the bucket 'demo-bucket'.\n"),
		"photos/2024/beach.txt":      []byte("pretend this is a photo of a beach\n"),
		"photos/2024/mountain.txt":   []byte("pretend this is a photo of a mountain\n"),
		"photos/2025/":               nil, // a directory marker: an empty directory
		"logs/app-2026-11-01.log":    bytes.Repeat([]byte("INFO request served\n"), 1000),
		"logs/app-2026-11-02.log":    bytes.Repeat([]byte("WARN slow request\n"), 500),
		"data/random-64MiB.bin":      nil, // filled below
		"names/with space.txt":       []byte("keys may contain spaces\n"),
		"names/back\\slash.txt":      []byte("and backslashes, which are ordinary characters\n"),
		"names/hidden/../escape.txt": []byte("hidden: a key with a '..' component is never shown\n"),
	}
	big := make([]byte, 64<<20)
	if _, err := rand.Read(big); err != nil {
		return err
	}
	objects["data/random-64MiB.bin"] = big
	for key, body := range objects {
		if _, err := store.Head(ctx, key); err == nil {
			continue
		}
		if _, err := store.Put(ctx, key, bytes.NewReader(body), int64(len(body)), s3.WriteOptions{}); err != nil {
			return fmt.Errorf("put %s: %w", key, err)
		}
	}
	return nil
}
