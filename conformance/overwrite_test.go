package conformance

import (
	"bytes"
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
