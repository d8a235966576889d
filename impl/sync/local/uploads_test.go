package local

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// The upload journal survives a reopen, as it must survive a crash: an intent until its id
// is recorded, the id until the upload is completed or aborted.
func TestUploadJournalSurvivesReopen(t *testing.T) {
	l, dir := newLayer(t)
	require.NoError(t, l.IntendUpload("a"))
	require.NoError(t, l.IntendUpload("b"))
	require.NoError(t, l.RecordUpload("b", "id-b"))
	require.NoError(t, l.IntendUpload("c"))
	require.NoError(t, l.RecordUpload("c", "id-c"))
	require.NoError(t, l.ForgetUpload("id-c"))
	require.NoError(t, l.Close())

	l, err := Open(dir, testOpts())
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
	require.NoError(t, l.ForgetIntent("a"))
	require.NoError(t, l.ForgetUpload("id-b"))
	ups, err = l.OpenUploads()
	require.NoError(t, err)
	require.Empty(t, ups)
}
