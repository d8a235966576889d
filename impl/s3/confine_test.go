package s3_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mount-s3/mount-s3/impl/s3"
)

// Every key a confined store is asked for must lie under the prefix; the others never reach
// the store.
func TestConfine(t *testing.T) {
	inner, _ := embeddedStore(t, "")
	ctx := context.Background()
	_, err := inner.Put(ctx, "outside", bytes.NewReader([]byte("x")), 1, s3.WriteOptions{})
	require.NoError(t, err)
	st := s3.Confine(inner, "p/")
	_, err = st.Put(ctx, "p/in", bytes.NewReader([]byte("y")), 1, s3.WriteOptions{})
	require.NoError(t, err)

	out := []error{}
	_, err = st.Head(ctx, "outside")
	out = append(out, err)
	_, _, err = st.Get(ctx, "outside", 0, -1, "")
	out = append(out, err)
	_, err = st.Put(ctx, "p", bytes.NewReader(nil), 0, s3.WriteOptions{})
	out = append(out, err)
	_, err = st.Copy(ctx, "outside", "p/copy", s3.WriteOptions{})
	out = append(out, err)
	_, err = st.Copy(ctx, "p/in", "q/copy", s3.WriteOptions{})
	out = append(out, err)
	out = append(out, st.Delete(ctx, "outside"))
	_, err = st.List(ctx, s3.ListInput{Prefix: ""})
	out = append(out, err)
	_, err = st.ListMultipartUploads(ctx, "")
	out = append(out, err)
	_, err = st.CreateMultipart(ctx, "../p/x", s3.WriteOptions{})
	out = append(out, err)
	for i, err := range out {
		require.True(t, errors.Is(err, s3.ErrOutsidePrefix), "call %d: %v", i, err)
	}
	_, err = inner.Head(ctx, "outside")
	require.NoError(t, err, "the refused delete never reached the store")
	_, err = inner.Head(ctx, "q/copy")
	require.True(t, errors.Is(err, s3.ErrNotFound))

	page, err := st.List(ctx, s3.ListInput{Prefix: "p/"})
	require.NoError(t, err)
	require.Len(t, page.Objects, 1)
	require.Same(t, inner, s3.Confine(inner, ""), "an empty prefix confines nothing")
}
