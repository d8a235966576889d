package conformance

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/conformance/harness"
)

// TestReaderDuringOverwrite: a program that opened the old version keeps reading the old
// version, or gets an error, while another overwrites the file (S6, S1's If-Match); it never
// gets the new version's bytes after the old one's. Before write handles bypassed the page
// cache, the writer's pages were where the reader found them (the chaos campaign's known
// limitation).
func TestReaderDuringOverwrite(t *testing.T) {
	m := harness.New(t, harness.Options{Args: []string{"--allow-overwrite"}})
	const size = 1 << 20
	old, neu := bytes.Repeat([]byte("o"), size), bytes.Repeat([]byte("n"), size)
	m.Put(t, "f", old)

	r, err := os.Open(m.Path("f"))
	require.NoError(t, err)
	defer r.Close()
	head := make([]byte, 64<<10)
	_, err = io.ReadFull(r, head)
	require.NoError(t, err)
	require.Equal(t, old[:len(head)], head)

	w, err := os.OpenFile(m.Path("f"), os.O_WRONLY|os.O_TRUNC, 0)
	require.NoError(t, err)
	_, err = w.Write(neu)
	require.NoError(t, err)

	// The writer has not closed: the bucket still holds the old version.
	rest, err := io.ReadAll(r)
	if err == nil {
		require.NotContains(t, string(rest), "n", "the reader got the new version's bytes after the old one's")
	}
	require.NoError(t, w.Close())
	got, err := os.ReadFile(m.Path("f"))
	require.NoError(t, err)
	require.True(t, bytes.Equal(neu, got), "a new open reads the new version")
}

// TestReaderOfShorterVersionDuringOverwrite: a reader opened a short version while a writer
// writes a longer one. They share the kernel's inode, and with it the size the writer has
// reached: the reader must get its version whole or an error, never that version followed by
// zeros up to the writer's size (the chaos campaign, streaming seed 306).
func TestReaderOfShorterVersionDuringOverwrite(t *testing.T) {
	m := harness.New(t, harness.Options{Args: []string{"--allow-overwrite"}})
	old := bytes.Repeat([]byte("o"), 100<<10)
	chunk := bytes.Repeat([]byte("n"), 4<<10)
	for i := 0; i < 10; i++ {
		m.Put(t, fmt.Sprintf("g%d", i), old)
	}
	for i := 0; i < 10; i++ {
		name := fmt.Sprintf("g%d", i)
		r, err := os.Open(m.Path(name))
		require.NoError(t, err)
		w, err := os.OpenFile(m.Path(name), os.O_WRONLY|os.O_TRUNC, 0)
		require.NoError(t, err)
		wrote := make(chan error, 1)
		go func() {
			var err error
			for n := 0; n < 512 && err == nil; n++ {
				_, err = w.Write(chunk)
			}
			wrote <- errors.Join(err, w.Close())
		}()
		var got []byte
		buf := make([]byte, 4<<10)
		for {
			n, err := r.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				break
			}
		}
		r.Close()
		require.NoError(t, <-wrote)
		require.LessOrEqual(t, len(got), len(old), "%s: the reader got %d bytes of a %d-byte version", name, len(got), len(old))
		require.True(t, bytes.Equal(old[:len(got)], got), "%s: the reader's bytes are not the version it opened", name)
	}
}

// TestReaderDuringRecreate: a program reads a file; another deletes it and creates a new
// file of that name. The kernel must not give the new file the old one's inode (one inode
// number, one path): the reader keeps the old version or gets an error, never the new file's
// bytes.
func TestReaderDuringRecreate(t *testing.T) {
	m := harness.New(t, harness.Options{Args: []string{"--allow-delete"}})
	old := bytes.Repeat([]byte("o"), 1<<20)
	m.Put(t, "h", old)
	r, err := os.Open(m.Path("h"))
	require.NoError(t, err)
	defer r.Close()
	head := make([]byte, 64<<10)
	_, err = io.ReadFull(r, head)
	require.NoError(t, err)

	require.NoError(t, os.Remove(m.Path("h")))
	w, err := os.OpenFile(m.Path("h"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	require.NoError(t, err)
	_, err = w.Write(bytes.Repeat([]byte("n"), 1<<20))
	require.NoError(t, err)

	rest, err := io.ReadAll(r)
	if err == nil {
		require.NotContains(t, string(rest), "n", "the reader of the deleted file got the new file's bytes")
	}
	require.NoError(t, w.Close())
	got, err := os.ReadFile(m.Path("h"))
	require.NoError(t, err)
	require.Equal(t, 1<<20, len(got))
	require.NotContains(t, string(got), "o", "a new open reads the new file")
}
