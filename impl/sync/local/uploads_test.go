package local

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// The upload journal survives a reopen, as it must survive a crash: an intent until its id
// is recorded, the id until the upload is completed or aborted.
func TestUploadJournalSurvivesReopen(t *testing.T) {
	l, dir := newLayer(t)
	ta, err := l.IntendUpload("a")
	require.NoError(t, err)
	tb, err := l.IntendUpload("b")
	require.NoError(t, err)
	require.NoError(t, l.RecordUpload("b", tb, "id-b"))
	tc, err := l.IntendUpload("c")
	require.NoError(t, err)
	require.NoError(t, l.RecordUpload("c", tc, "id-c"))
	require.NoError(t, l.ForgetUpload("id-c"))
	// A retried create of a key keeps the intent of the first, whose answer was lost.
	ta2, err := l.IntendUpload("a")
	require.NoError(t, err)
	require.NotEqual(t, ta, ta2)
	require.NoError(t, l.RecordUpload("a", ta2, "id-a2"))
	require.NoError(t, l.ForgetUpload("id-a2"))
	require.NoError(t, l.Close())

	l, err = Open(dir, testOpts())
	require.NoError(t, err)
	defer l.Close()
	ups, err := l.OpenUploads()
	require.NoError(t, err)
	require.Len(t, ups, 2)
	got := map[string]OpenUpload{}
	for _, u := range ups {
		got[u.Key] = u
	}
	require.Equal(t, "", got["a"].ID, "an intent has no id yet")
	require.False(t, got["a"].Started.IsZero(), "an intent has its time")
	require.Equal(t, "id-b", got["b"].ID, "recording the id replaces the intent")
	require.Equal(t, ta, got["a"].Token)
	require.NoError(t, l.ForgetIntent("a", ta))
	require.NoError(t, l.ForgetUpload("id-b"))
	ups, err = l.OpenUploads()
	require.NoError(t, err)
	require.Empty(t, ups)
}
