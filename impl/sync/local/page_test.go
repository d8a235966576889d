package local

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// DirtyPage and PendingPage read the same records as Dirty and Pending, a page at a time,
// whatever the page size, with clean records between the dirty ones (`mount-s3 status
// --all` of a million pending changes holds one page at a time).
func TestPagesCoverTheWholeListing(t *testing.T) {
	l, _ := newLayer(t)
	_, err := l.Mkdir("d", 0o755, 1, 2)
	require.NoError(t, err)
	for i := 0; i < 300; i++ {
		writeFile(t, l, fmt.Sprintf("d/f%03d", i), "x")
	}
	for i := 0; i < 300; i += 3 {
		// Every third file is clean: the bucket has it.
		require.True(t, upload(t, l, fmt.Sprintf("d/f%03d", i)))
	}
	require.NoError(t, l.Rename("d", "e"))
	want, err := l.Dirty()
	require.NoError(t, err)
	require.Greater(t, len(want), 200)
	wantOps, err := l.Pending()
	require.NoError(t, err)
	require.NotEmpty(t, wantOps) // the renames of the clean files
	for _, n := range []int{1, 7, 200, 5000} {
		var got []Info
		var cursor []byte
		for {
			page, next, err := l.DirtyPage(cursor, n)
			require.NoError(t, err)
			require.LessOrEqual(t, len(page), n)
			got = append(got, page...)
			if next == nil {
				break
			}
			cursor = next
		}
		sortInfos(got)
		require.Equal(t, paths(want), paths(got), "page size %d", n)

		var ops []Op
		var after uint64
		for {
			page, err := l.PendingPage(after, n)
			require.NoError(t, err)
			if len(page) == 0 {
				break
			}
			ops = append(ops, page...)
			after = page[len(page)-1].ID
		}
		require.Equal(t, wantOps, ops, "page size %d", n)
	}
}

func paths(infos []Info) []string {
	var out []string
	for _, i := range infos {
		out = append(out, i.Path)
	}
	return out
}
