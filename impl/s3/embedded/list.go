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
	if prefix != "" && marker < prefix {
		marker = "" // seeking from the prefix itself is the same and cheaper
	}

	count := 0
	for maxKeys > 0 { // max-keys=0 is an empty, untruncated page
		entries, err := f.flat(bucket, prefix, marker, batchSize)
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
func (f *fixes) flat(bucket, prefix, marker string, n int) ([]*gofakes3.Content, error) {
	p := gofakes3.Prefix{HasPrefix: prefix != "", Prefix: prefix}
	page := gofakes3.ListBucketPage{Marker: marker, HasMarker: marker != "", MaxKeys: int64(n)}
	list, err := f.backend.ListBucket(bucket, &p, page)
	if err != nil {
		return nil, err
	}
	return list.Contents, nil
}
