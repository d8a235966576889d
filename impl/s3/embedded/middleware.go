package embedded

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/johannesboyne/gofakes3"
)

// fixes sits in front of gofakes3's handler and answers, itself, the requests gofakes3
// gets wrong. Everything else passes through untouched.
type fixes struct {
	next    http.Handler
	backend gofakes3.Backend
	// completeMu makes "check the condition, then complete" atomic against other
	// conditional completions (gofakes3 ignores If-Match / If-None-Match on completion).
	completeMu sync.Mutex
}

func (f *fixes) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	bucket, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	q := r.URL.Query()
	_, uploads := q["uploads"]
	uploadID := q.Get("uploadId")
	plainObject := key != "" && uploadID == "" && !uploads && !q.Has("versionId") && !q.Has("versions")

	if key != "" && r.Method == http.MethodPut && r.Header.Get("X-Amz-Copy-Source") == "" {
		// gofakes3 checks Content-MD5 only; S3 also checks the payload hash that was signed
		// and the x-amz-checksum-* header, so a body damaged in transit is never stored.
		if !f.verifyPayload(w, r) {
			return
		}
	}
	switch {
	case bucket != "" && key == "" && r.Method == http.MethodGet && uploads:
		f.listUploads(w, r, bucket)
	case bucket != "" && key == "" && r.Method == http.MethodGet && q.Get("list-type") == "2":
		f.listV2(w, r, bucket)
	case plainObject && (r.Method == http.MethodGet || r.Method == http.MethodHead) && r.Header.Get("If-Match") != "":
		f.getIfMatch(w, r, bucket, key)
	case plainObject && r.Method == http.MethodPut && r.Header.Get("X-Amz-Copy-Source") != "":
		f.copyObject(w, r, bucket, key)
	case key != "" && uploadID != "" && r.Method == http.MethodPut && r.Header.Get("X-Amz-Copy-Source") != "":
		f.uploadPartCopy(w, r, bucket, key)
	case key != "" && uploadID != "" && r.Method == http.MethodPost:
		f.complete(w, r, bucket, key)
	default:
		f.next.ServeHTTP(w, r)
	}
}

// verifyPayload reads the body of an upload and checks it against x-amz-content-sha256 (when
// it is a hash, not UNSIGNED-PAYLOAD) and x-amz-checksum-crc32c / -crc32 / -sha256, answering
// as S3 does when one does not match. It puts the body back for the next handler.
func (f *fixes) verifyPayload(w http.ResponseWriter, r *http.Request) bool {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		writeError(w, r, gofakes3.ErrIncompleteBody)
		return false
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	if h := r.Header.Get("X-Amz-Content-Sha256"); len(h) == 64 {
		sum := sha256.Sum256(body)
		if !strings.EqualFold(h, hex.EncodeToString(sum[:])) {
			writeCode(w, r, http.StatusBadRequest, "XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header does not match what was computed.")
			return false
		}
	}
	for header, sum := range map[string]func() []byte{
		"X-Amz-Checksum-Crc32c": func() []byte { return crcBytes(crc32.Checksum(body, crc32.MakeTable(crc32.Castagnoli))) },
		"X-Amz-Checksum-Crc32":  func() []byte { return crcBytes(crc32.ChecksumIEEE(body)) },
		"X-Amz-Checksum-Sha256": func() []byte { s := sha256.Sum256(body); return s[:] },
	} {
		if v := r.Header.Get(header); v != "" && v != base64.StdEncoding.EncodeToString(sum()) {
			writeError(w, r, gofakes3.ErrBadDigest)
			return false
		}
	}
	return true
}

func crcBytes(c uint32) []byte { return binary.BigEndian.AppendUint32(nil, c) }

// listUploads: gofakes3 answers NoSuchUpload for a bucket that has never had an upload;
// S3 answers an empty list.
func (f *fixes) listUploads(w http.ResponseWriter, r *http.Request, bucket string) {
	rec := httptest.NewRecorder()
	f.next.ServeHTTP(rec, r)
	if rec.Code == http.StatusNotFound && bytes.Contains(rec.Body.Bytes(), []byte(string(gofakes3.ErrNoSuchUpload))) {
		writeXML(w, http.StatusOK, gofakes3.ListMultipartUploadsResult{
			Bucket:     bucket,
			Prefix:     r.URL.Query().Get("prefix"),
			MaxUploads: gofakes3.DefaultMaxUploads,
		})
		return
	}
	replay(w, rec)
}

// getIfMatch: gofakes3 ignores If-Match on GET and HEAD, so a reader could mix two
// versions of an object. The check and the read are not atomic here; a write landing in
// between is served, which is good enough for a test server.
func (f *fixes) getIfMatch(w http.ResponseWriter, r *http.Request, bucket, key string) {
	obj, err := f.backend.HeadObject(bucket, key)
	if err != nil {
		f.next.ServeHTTP(w, r) // let gofakes3 produce its NoSuchKey / NoSuchBucket
		return
	}
	obj.Contents.Close()
	if !etagMatches(r.Header.Get("If-Match"), obj.Hash) {
		writeError(w, r, gofakes3.ErrorMessage(gofakes3.ErrPreconditionFailed, "At least one of the pre-conditions you specified did not hold"))
		return
	}
	f.next.ServeHTTP(w, r)
}

func etagMatches(header string, hash []byte) bool {
	etag := gofakes3.FormatETag(hash)
	for _, want := range strings.Split(header, ",") {
		want = strings.TrimSpace(want)
		if want == "*" || want == etag || `"`+want+`"` == etag {
			return true
		}
	}
	return false
}

// copyObject: gofakes3 merges the source's metadata into the destination even with
// x-amz-metadata-directive: REPLACE, and its copy-source decoding turns "+" into a space.
func (f *fixes) copyObject(w http.ResponseWriter, r *http.Request, bucket, key string) {
	srcBucket, srcKey, ok := copySource(r)
	if !ok {
		writeError(w, r, gofakes3.ErrorMessage(gofakes3.ErrInvalidArgument, "bad x-amz-copy-source"))
		return
	}
	obj, err := f.backend.HeadObject(srcBucket, srcKey)
	if err != nil {
		writeError(w, r, err)
		return
	}
	obj.Contents.Close()
	// gofakes3 ignores x-amz-copy-source-if-match. Checked apart from the copy: a write
	// landing in between is copied, which is good enough for a test server.
	if m := r.Header.Get("X-Amz-Copy-Source-If-Match"); m != "" && !etagMatches(m, obj.Hash) {
		writeError(w, r, gofakes3.ErrorMessage(gofakes3.ErrPreconditionFailed, "At least one of the pre-conditions you specified did not hold"))
		return
	}

	meta := map[string]string{}
	if strings.EqualFold(r.Header.Get("X-Amz-Metadata-Directive"), "REPLACE") {
		for k := range r.Header {
			if storedHeader(k) {
				meta[k] = r.Header.Get(k)
			}
		}
	} else {
		for k, v := range obj.Metadata {
			meta[k] = v
		}
	}
	// Storage class and encryption come from the copy request in both modes, as in S3.
	for k := range meta {
		if k == "X-Amz-Storage-Class" || strings.HasPrefix(k, "X-Amz-Server-Side-Encryption") {
			delete(meta, k)
		}
	}
	for k := range r.Header {
		if k == "X-Amz-Storage-Class" || strings.HasPrefix(k, "X-Amz-Server-Side-Encryption") {
			meta[k] = r.Header.Get(k)
		}
	}
	res, err := f.backend.CopyObject(srcBucket, srcKey, bucket, key, meta)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeXML(w, http.StatusOK, res)
}

// copySource parses x-amz-copy-source ("/bucket/key" or "bucket/key", URL-encoded).
// gofakes3's own decoding turns "+" into a space.
func copySource(r *http.Request) (bucket, key string, ok bool) {
	src := r.Header.Get("X-Amz-Copy-Source")
	src, _, _ = strings.Cut(src, "?") // versionId is not supported
	src, err := url.PathUnescape(strings.TrimPrefix(src, "/"))
	bucket, key, ok = strings.Cut(src, "/")
	return bucket, key, err == nil && ok && bucket != "" && key != ""
}

// uploadPartCopy: gofakes3 has no UploadPartCopy (it takes the request for an UploadPart
// with an empty body). The source range is read from the backend here, checked against
// x-amz-copy-source-if-match in the same read, and handed to gofakes3 as an ordinary
// part; the answer is the CopyPartResult S3 sends.
func (f *fixes) uploadPartCopy(w http.ResponseWriter, r *http.Request, bucket, key string) {
	srcBucket, srcKey, ok := copySource(r)
	if !ok {
		writeError(w, r, gofakes3.ErrorMessage(gofakes3.ErrInvalidArgument, "bad x-amz-copy-source"))
		return
	}
	var rng *gofakes3.ObjectRangeRequest
	if h := r.Header.Get("X-Amz-Copy-Source-Range"); h != "" {
		var first, last int64
		if n, err := fmt.Sscanf(h, "bytes=%d-%d", &first, &last); err != nil || n != 2 || first < 0 || last < first {
			writeError(w, r, gofakes3.ErrorMessage(gofakes3.ErrInvalidArgument, "bad x-amz-copy-source-range "+h))
			return
		}
		rng = &gofakes3.ObjectRangeRequest{Start: first, End: last}
	}
	// One read gives the bytes and the hash they belong to: the condition and the data
	// cannot come from two versions.
	ifMatch := r.Header.Get("X-Amz-Copy-Source-If-Match")
	obj, err := f.backend.GetObject(srcBucket, srcKey, rng)
	if err != nil {
		// S3 checks the condition before the range: a source replaced by a shorter one
		// is a failed precondition, not a bad range.
		if head, herr := f.backend.HeadObject(srcBucket, srcKey); herr == nil {
			head.Contents.Close()
			if ifMatch != "" && !etagMatches(ifMatch, head.Hash) {
				err = gofakes3.ErrorMessage(gofakes3.ErrPreconditionFailed, "At least one of the pre-conditions you specified did not hold")
			} else if gofakes3.HasErrorCode(err, gofakes3.ErrInvalidRange) {
				err = gofakes3.ErrorMessage(gofakes3.ErrInvalidArgument,
					fmt.Sprintf("Range specified is not valid for source object of size: %d", head.Size))
			}
		}
		writeError(w, r, err)
		return
	}
	data, err := io.ReadAll(obj.Contents)
	obj.Contents.Close()
	if err != nil {
		writeError(w, r, err)
		return
	}
	if ifMatch != "" && !etagMatches(ifMatch, obj.Hash) {
		writeError(w, r, gofakes3.ErrorMessage(gofakes3.ErrPreconditionFailed, "At least one of the pre-conditions you specified did not hold"))
		return
	}
	if rng != nil && rng.End >= obj.Size {
		// S3 refuses a range that is not wholly inside the source.
		writeError(w, r, gofakes3.ErrorMessage(gofakes3.ErrInvalidArgument,
			fmt.Sprintf("Range specified is not valid for source object of size: %d", obj.Size)))
		return
	}

	part := r.Clone(r.Context())
	for k := range part.Header {
		if strings.HasPrefix(k, "X-Amz-Copy-Source") || strings.HasPrefix(k, "X-Amz-Checksum") ||
			k == "Content-Md5" || k == "X-Amz-Sdk-Checksum-Algorithm" {
			part.Header.Del(k)
		}
	}
	part.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
	part.Header.Set("Content-Length", strconv.Itoa(len(data)))
	part.ContentLength = int64(len(data))
	part.Body = io.NopCloser(bytes.NewReader(data))
	rec := httptest.NewRecorder()
	f.next.ServeHTTP(rec, part)
	etag := rec.Header().Get("ETag")
	if rec.Code != http.StatusOK || etag == "" {
		replay(w, rec)
		return
	}
	for k, v := range rec.Header() {
		if k != "Etag" && k != "Content-Length" {
			w.Header()[k] = v
		}
	}
	writeXML(w, http.StatusOK, struct {
		XMLName      xml.Name             `xml:"CopyPartResult"`
		ETag         string               `xml:"ETag"`
		LastModified gofakes3.ContentTime `xml:"LastModified"`
	}{ETag: etag, LastModified: gofakes3.NewContentTime(time.Now())})
}

// complete: gofakes3 ignores If-Match / If-None-Match on CompleteMultipartUpload, and
// answers with an ETag ("md5-of-part-md5s-N", as S3 does) that differs from the one the
// stored object then reports on HEAD/GET (md5 of the bytes). Callers reuse the returned
// ETag for If-Match, so the response is rewritten to the stored object's ETag.
func (f *fixes) complete(w http.ResponseWriter, r *http.Request, bucket, key string) {
	ifMatch, ifNoneMatch := r.Header.Get("If-Match"), r.Header.Get("If-None-Match")
	if ifMatch != "" || ifNoneMatch != "" {
		f.completeMu.Lock()
		defer f.completeMu.Unlock()
		obj, err := f.backend.HeadObject(bucket, key)
		exists := err == nil
		if exists {
			obj.Contents.Close()
		} else if !gofakes3.HasErrorCode(err, gofakes3.ErrNoSuchKey) {
			writeError(w, r, err)
			return
		}
		if (ifNoneMatch == "*" && exists) || (ifMatch != "" && (!exists || !etagMatches(ifMatch, obj.Hash))) {
			writeError(w, r, gofakes3.ErrorMessage(gofakes3.ErrPreconditionFailed, "At least one of the pre-conditions you specified did not hold"))
			return
		}
	}

	rec := httptest.NewRecorder()
	f.next.ServeHTTP(rec, r)
	var res gofakes3.CompleteMultipartUploadResult
	if rec.Code != http.StatusOK || xml.Unmarshal(rec.Body.Bytes(), &res) != nil || res.Key == "" {
		replay(w, rec)
		return
	}
	if obj, err := f.backend.HeadObject(bucket, key); err == nil {
		obj.Contents.Close()
		res.ETag = gofakes3.FormatETag(obj.Hash)
	}
	for k, v := range rec.Header() {
		if k != "Content-Length" {
			w.Header()[k] = v
		}
	}
	writeXML(w, http.StatusOK, struct {
		XMLName xml.Name `xml:"CompleteMultipartUploadResult"`
		gofakes3.CompleteMultipartUploadResult
	}{CompleteMultipartUploadResult: res})
}

func replay(w http.ResponseWriter, rec *httptest.ResponseRecorder) {
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

func writeXML(w http.ResponseWriter, status int, v any) {
	body, err := xml.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(xml.Header))
	_, _ = w.Write(body)
}

// writeError answers in S3's error format, with the status gofakes3 assigns the code.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	code := gofakes3.ErrInternal
	var e gofakes3.Error
	if errors.As(err, &e) {
		code = e.ErrorCode()
	}
	writeCode(w, r, code.Status(), string(code), fmt.Sprint(err))
}

// writeCode answers an S3 error with any code and status.
func writeCode(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	body, _ := xml.Marshal(struct {
		XMLName  xml.Name `xml:"Error"`
		Code     string
		Message  string
		Resource string
	}{Code: code, Message: msg, Resource: r.URL.Path})
	_, _ = w.Write([]byte(xml.Header))
	_, _ = w.Write(body)
}
