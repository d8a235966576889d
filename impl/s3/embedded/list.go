package embedded

import (
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"

	"github.com/johannesboyne/gofakes3"
)

// Why ListObjectsV2 is answered here rather than by gofakes3:
//   - gofakes3's Prefix.Match splits keys on the delimiter after trimming leading
//     delimiters, so keys such as "/a" or "a//b" group wrongly;
//   - s3mem's NextMarker after a common prefix is the group's first key, so the next page
//     emits the same prefix again, and it can report IsTruncated with nothing left;
//   - continuation tokens are only as good as those markers.
//
// Here the backend is asked only for flat, prefix-filtered runs of keys in byte order
// (which both bundled backends do correctly) and grouping, paging and tokens are done the
// way S3 does them.

const (
	defaultMaxKeys = 1000
	batchSize      = 1000
	// afterAll sorts after every valid UTF-8 continuation of a prefix, so a marker of
	// prefix+afterAll skips every key under that prefix in one seek.
	afterAll = "\xff"
)

func (f *fixes) listV2(w http.ResponseWriter, r *http.Request, bucket string) {
	q := r.URL.Query()
	prefix, delim := q.Get("prefix"), q.Get("delimiter")
	maxKeys := defaultMaxKeys
	if s := q.Get("max-keys"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			writeError(w, r, gofakes3.ErrorInvalidArgument("max-keys", s, "Provided max-keys not an integer or within integer range"))
			return
		}
		maxKeys = min(n, defaultMaxKeys)
	}
	marker := q.Get("start-after")
	if tok := q.Get("continuation-token"); tok != "" {
		dec, err := base64.URLEncoding.DecodeString(tok)
		if err != nil {
			writeError(w, r, gofakes3.ErrorInvalidArgument("continuation-token", tok, "The continuation token provided is incorrect"))
			return
		}
		marker = string(dec)
	}
	if ok, err := f.backend.BucketExists(bucket); err != nil || !ok {
		writeError(w, r, gofakes3.BucketNotFound(bucket))
		return
	}

	res := gofakes3.ListBucketResultV2{
		ListBucketResultBase: gofakes3.ListBucketResultBase{
			Xmlns:     "http://s3.amazonaws.com/doc/2006-03-01/",
			Name:      bucket,
			Delimiter: delim,
			Prefix:    prefix,
			MaxKeys:   int64(maxKeys),
		},
		ContinuationToken: q.Get("continuation-token"),
		StartAfter:        q.Get("start-after"),
	}
	count := 0
	for maxKeys > 0 { // max-keys=0 is an empty, untruncated page
		// One more than the page needs tells whether it is truncated.
		entries, err := f.flat(bucket, prefix, marker, min(batchSize, maxKeys-count+1))
		if err != nil {
			writeError(w, r, err)
			return
		}
		if len(entries) == 0 {
			break
		}
		if count == maxKeys {
			// Something is left: the page is full and truncated.
			res.IsTruncated = true
			res.NextContinuationToken = base64.URLEncoding.EncodeToString([]byte(marker))
			break
		}
		for _, c := range entries {
			if delim != "" {
				if i := strings.Index(c.Key[len(prefix):], delim); i >= 0 {
					cp := c.Key[:len(prefix)+i+len(delim)]
					res.CommonPrefixes = append(res.CommonPrefixes, gofakes3.CommonPrefix{Prefix: cp})
					count++
					marker = cp + afterAll
					break // re-seek past the whole group
				}
			}
			res.Contents = append(res.Contents, c)
			count++
			marker = c.Key
			if count == maxKeys {
				break
			}
		}
	}
	res.KeyCount = int64(len(res.Contents) + len(res.CommonPrefixes))
	writeXML(w, http.StatusOK, res)
}

// flat returns up to n keys after marker that start with prefix, in byte order.
//
// The bundled backends scan every key from the marker on (from the first key without one)
// and test the prefix on each, to the end of the bucket. A lookup's LIST of a name that
// has no keys under it then costs a scan of the whole bucket. So the backend is asked for
// unfiltered runs of keys starting just before the prefix, and the scan stops at the
// first key past the prefix's range.
func (f *fixes) flat(bucket, prefix, marker string, n int) ([]*gofakes3.Content, error) {
	if prefix != "" && marker < prefix {
		marker = beforePrefix(prefix)
	}
	var out []*gofakes3.Content
	for {
		page := gofakes3.ListBucketPage{Marker: marker, HasMarker: marker != "", MaxKeys: int64(n)}
		list, err := f.backend.ListBucket(bucket, &gofakes3.Prefix{}, page)
		if err != nil {
			return nil, err
		}
		for _, c := range list.Contents {
			switch {
			case strings.HasPrefix(c.Key, prefix):
				out = append(out, c)
			case c.Key > prefix:
				return out, nil // past every key under prefix
			}
			marker = c.Key
		}
		if len(out) > 0 || len(list.Contents) < n {
			return out, nil
		}
		// A whole run of keys before the prefix: go on after it.
	}
}

// beforePrefix returns a marker just before prefix: the backend starts after it, and a key
// it skips (one equal to it) does not start with prefix.
func beforePrefix(prefix string) string {
	last := prefix[len(prefix)-1]
	if last == 0 {
		return prefix[:len(prefix)-1]
	}
	return prefix[:len(prefix)-1] + string([]byte{last - 1})
}
