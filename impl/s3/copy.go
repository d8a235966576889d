package s3

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"time"
)

// Copy limits. S3's CopyObject refuses sources over 5 GiB; a multipart upload has at most
// 10,000 parts of 5 MiB to 5 GiB each (the last may be smaller).
const (
	MaxCopyObjectSize   int64 = 5 << 30
	DefaultCopyPartSize int64 = 512 << 20
	MinPartSize         int64 = 5 << 20
	MaxPartSize         int64 = 5 << 30
	MaxParts                  = 10000
	// DefaultCopyConcurrency bounds the part copies of one CopyLarge in flight.
	DefaultCopyConcurrency = 8
)

// CopyThreshold is the default CopyConfig.Threshold. A variable so that tests of code that
// does not expose the setting can lower it.
var CopyThreshold = MaxCopyObjectSize

// CopyConfig tunes CopyLarge. Zero values mean the defaults.
type CopyConfig struct {
	// Threshold: sources up to this size are copied with one CopyObject, larger ones with a
	// multipart upload of part copies (default CopyThreshold; at most 5 GiB).
	Threshold int64
	// PartSize of a multipart copy (default 512 MiB). It is raised as needed to keep
	// within 10,000 parts.
	PartSize int64
	// Concurrency bounds the part copies in flight (default 8).
	Concurrency int
}

// Multipart reports whether CopyLarge copies a source of size bytes in parts.
func (c CopyConfig) Multipart(size int64) bool {
	threshold := c.Threshold
	if threshold <= 0 {
		threshold = CopyThreshold
	}
	return size > min(threshold, MaxCopyObjectSize)
}

// CopyLarge copies the object src, as a Head of it returned it (Key, Size, ETag and, for a
// copy that keeps the metadata, Metadata and ContentType), to dst, whatever its size:
// Store.Copy up to cfg.Threshold, else CreateMultipart, UploadPartCopy in parts and
// CompleteMultipart, aborting the upload on any failure.
//
// Every request is conditional on the source still having src.ETag, so the copy is of that
// version or fails with ErrPreconditionFailed; it never mixes two. opts are the
// destination's write options as for Copy: nil Metadata keeps the source's. A multipart copy
// cannot carry metadata over by itself, so it writes src.Metadata and src.ContentType (other
// headers, such as Content-Encoding, are not carried over). opts.IfMatch / IfNoneMatch
// make a multipart copy's completion conditional on the destination (Copy ignores them).
func CopyLarge(ctx context.Context, st Store, src ObjectInfo, dst string, opts WriteOptions, cfg CopyConfig) (ObjectInfo, error) {
	opts.SourceIfMatch = src.ETag
	if !cfg.Multipart(src.Size) {
		info, err := st.Copy(ctx, src.Key, dst, opts)
		if err == nil && info.Size == 0 {
			info.Size = src.Size
		}
		return info, err
	}

	partSize := CopyPartSize(src.Size, cfg.PartSize)
	if opts.Metadata == nil {
		opts.Metadata = maps.Clone(src.Metadata)
		if opts.Metadata == nil {
			opts.Metadata = map[string]string{}
		}
		if opts.ContentType == "" {
			opts.ContentType = src.ContentType
		}
	}
	// No client checksum: a part copy sends no bytes for one to protect, and some stores
	// (MinIO) refuse part copies into an upload that names a checksum algorithm.
	opts.Checksum = ""
	complete := opts
	opts.IfMatch, opts.IfNoneMatch, opts.SourceIfMatch = "", "", ""
	id, err := st.CreateMultipart(ctx, dst, opts)
	if err != nil {
		return ObjectInfo{}, err
	}
	parts, err := copyParts(ctx, st, src, dst, id, partSize, cfg.Concurrency)
	var info ObjectInfo
	if err == nil {
		info, err = st.CompleteMultipart(ctx, dst, id, parts, complete)
	}
	if err != nil {
		// The caller's context may be what failed; the upload must not be left behind.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if aerr := st.AbortMultipart(actx, dst, id); aerr != nil {
			err = fmt.Errorf("%w (and aborting upload %s failed: %v)", err, id, aerr)
		}
		return ObjectInfo{}, err
	}
	info.Size = src.Size
	return info, nil
}

// CopyPartSize is the part size of a multipart copy of size bytes: want (DefaultCopyPartSize
// if <= 0), raised to keep within MaxParts and kept within S3's part size limits.
func CopyPartSize(size, want int64) int64 {
	if want <= 0 {
		want = DefaultCopyPartSize
	}
	if need := (size + MaxParts - 1) / MaxParts; want < need {
		want = need
	}
	return min(max(want, MinPartSize), MaxPartSize)
}

// copyParts copies src in parts of partSize, at most concurrency at a time, and returns
// them in order. The first failure stops the rest.
func copyParts(ctx context.Context, st Store, src ObjectInfo, dst, id string, partSize int64, concurrency int) ([]CompletedPart, error) {
	if concurrency <= 0 {
		concurrency = DefaultCopyConcurrency
	}
	n := int((src.Size + partSize - 1) / partSize)
	if n > MaxParts {
		return nil, fmt.Errorf("s3 copy %q -> %q: %d bytes need %d parts of %d, more than %d", src.Key, dst, src.Size, n, partSize, MaxParts)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	parts := make([]CompletedPart, n)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	sem := make(chan struct{}, concurrency)
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			first := int64(i) * partSize
			last := min(first+partSize, src.Size) - 1
			p, err := st.UploadPartCopy(ctx, dst, id, int32(i+1), src.Key, first, last, src.ETag)
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
				cancel()
				return
			}
			parts[i] = p
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return parts, nil
}
