package local

import (
	"encoding/binary"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// OpenUpload is a multipart upload the engine started and has not yet completed or aborted.
// ID is empty for an upload that was about to be created when the journal was written (an
// intent): a crash before its id was journaled leaves an upload only a listing can find.
type OpenUpload struct {
	Key, ID string
	Token   string    // an intent's token
	Started time.Time // when the intent was journaled (the local clock)
}

// Journal entries: "u/" + upload id -> key, and "i/" + key + NUL + token -> the intent's start
// (unix nanos). Each intent has a token of its own, so that a retried create of the same key
// never overwrites or drops the intent of an earlier one whose answer was lost.

// IntendUpload journals that an upload of key is about to be created, before the request is
// sent: if the process dies before RecordUpload, the next start looks for it by key. The token
// names this intent for RecordUpload and ForgetIntent.
func (l *Layer) IntendUpload(key string) (token string, err error) {
	now := l.clock.Now()
	var t [8]byte
	binary.BigEndian.PutUint64(t[:], uint64(now.UnixNano()))
	err = l.journal(func(b *bolt.Bucket) error {
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		token = strconv.FormatUint(seq, 10)
		return b.Put([]byte("i/"+key+"\x00"+token), t[:])
	})
	return token, err
}

// RecordUpload journals an open multipart upload by id before any of its parts is sent, and
// drops the intent token of key, so that after a crash the next start can abort it: a store
// keeps the parts of an upload nobody completes (and bills them) until someone aborts it.
func (l *Layer) RecordUpload(key, token, id string) error {
	return l.journal(func(b *bolt.Bucket) error {
		if err := b.Delete([]byte("i/" + key + "\x00" + token)); err != nil {
			return err
		}
		return b.Put([]byte("u/"+id), []byte(key))
	})
}

// ForgetIntent drops an intent (the create was refused: nothing to find later).
func (l *Layer) ForgetIntent(key, token string) error {
	return l.journal(func(b *bolt.Bucket) error { return b.Delete([]byte("i/" + key + "\x00" + token)) })
}

// ForgetUpload drops an upload from the journal once it is completed or aborted.
func (l *Layer) ForgetUpload(id string) error {
	return l.journal(func(b *bolt.Bucket) error { return b.Delete([]byte("u/" + id)) })
}

func (l *Layer) journal(fn func(b *bolt.Bucket) error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bUploads)
		if err != nil {
			return err
		}
		return fn(b)
	})
}

// OpenUploads lists the journal: after a crash, the uploads and intents it orphaned.
func (l *Layer) OpenUploads() ([]OpenUpload, error) {
	var out []OpenUpload
	err := l.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bUploads)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			switch name := string(k); {
			case strings.HasPrefix(name, "u/"):
				out = append(out, OpenUpload{Key: string(v), ID: name[2:]})
			case strings.HasPrefix(name, "i/") && len(v) == 8 && strings.LastIndexByte(name, 0) > 2:
				i := strings.LastIndexByte(name, 0)
				out = append(out, OpenUpload{Key: name[2:i], Token: name[i+1:], Started: time.Unix(0, int64(binary.BigEndian.Uint64(v)))})
			}
			return nil
		})
	})
	return out, err
}
