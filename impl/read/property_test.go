package read

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"sync"
	"testing"

	"pgregory.net/rapid"

	"github.com/mount-s3/mount-s3/impl/memory"
)

// TestReadAtProperty: whatever the sequence of reads (sequential runs, jumps, small steps
// back, bursts of concurrent out-of-order reads), the object size, the configuration, the
// budget and broken bodies, every read returns exactly the object's bytes, the budget is
// never exceeded, and Close gives all memory back.
//
// Parts are scaled down (1-16 KiB, tuning to match) so that small objects cross many parts
// and every path (prefetch, holes, back-pressure, seeks, retries) is taken.
func TestReadAtProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		part := rapid.SampledFrom([]int64{1 * KiB, 4 * KiB, 16 * KiB}).Draw(rt, "part")
		size := rapid.OneOf(
			rapid.SampledFrom([]int64{0, 1, part - 1, part, part + 1}),
			rapid.Int64Range(0, 40*part),
		).Draw(rt, "size")
		limit := rapid.Int64Range(0, 16*part).Draw(rt, "budget")
		cfg := Config{
			PartSize:      part,
			InitialWindow: rapid.Int64Range(1, part).Draw(rt, "initialWindow"),
			MaxWindow:     rapid.Int64Range(1, 10*part).Draw(rt, "maxWindow"),
			MaxInFlight:   rapid.IntRange(1, 8).Draw(rt, "maxInFlight"),
			Budget:        memory.NewBudget(limit),
			tune: &tuning{
				randomAlign:  part / 8,
				seqSlack:     part / 4,
				aheadSlack:   rapid.Int64Range(part/4, 2*part).Draw(rt, "aheadSlack"),
				keepBehind:   part / 2,
				rewindReads:  rapid.IntRange(1, 4).Draw(rt, "rewindReads"),
				publishEvery: int(part / 16),
			},
		}
		data := randomBytes(int(size), rapid.Int64().Draw(rt, "seed"))
		fake := newFakeStore()
		fake.put("k", data, `"e"`)
		fake.failBodies = rapid.IntRange(0, 3).Draw(rt, "brokenBodies") // fewer than maxBodyRetries
		fake.trickle = rapid.SampledFrom([]int{0, 64, 1024}).Draw(rt, "trickle")
		cfg.Store = fake
		r := NewReader(cfg, "k", `"e"`, size)

		pos := int64(0)
		steps := rapid.IntRange(1, 25).Draw(rt, "steps")
		for i := 0; i < steps; i++ {
			readSize := rapid.Int64Range(1, 3*part).Draw(rt, "readSize")
			switch rapid.IntRange(0, 3).Draw(rt, "op") {
			case 0: // a sequential run
				for n := rapid.IntRange(1, 20).Draw(rt, "reads"); n > 0; n-- {
					checkRead(rt, r, data, pos, readSize)
					pos += readSize
				}
			case 1: // a jump anywhere, also past the end
				pos = rapid.Int64Range(0, size+part).Draw(rt, "jump")
				checkRead(rt, r, data, pos, readSize)
				pos += readSize
			case 2: // a small step back
				pos = max(0, pos-rapid.Int64Range(0, 3*part).Draw(rt, "back"))
				checkRead(rt, r, data, pos, readSize)
				pos += readSize
			case 3: // reads sent together and arriving in any order, as from the kernel,
				// sometimes with a seek among them
				n := rapid.IntRange(2, 8).Draw(rt, "concurrent")
				offs := make([]int64, n)
				for j := range offs {
					offs[j] = pos + int64(j)*readSize
					if rapid.IntRange(0, 4).Draw(rt, "seekAmong") == 0 {
						offs[j] = rapid.Int64Range(0, size+part).Draw(rt, "jump")
					}
				}
				rand.New(rand.NewSource(int64(i))).Shuffle(n, func(a, b int) { offs[a], offs[b] = offs[b], offs[a] })
				var wg sync.WaitGroup
				errs := make([]error, n)
				for j, off := range offs {
					wg.Add(1)
					go func() {
						defer wg.Done()
						errs[j] = verifyRead(r, data, off, readSize)
					}()
				}
				wg.Wait()
				if err := errors.Join(errs...); err != nil {
					rt.Fatal(err)
				}
				pos += int64(n) * readSize
			}
			if in := cfg.Budget.InUse(); in > limit {
				rt.Fatalf("budget exceeded: %d in use, limit %d", in, limit)
			}
		}
		r.Close()
		if in := cfg.Budget.InUse(); in != 0 {
			rt.Fatalf("%d bytes still held after Close", in)
		}
		if st := snapshot(r); st.inflight != 0 || st.chunks != 0 {
			rt.Fatalf("after Close: %+v", st)
		}
	})
}

func checkRead(rt *rapid.T, r *Reader, data []byte, off, n int64) {
	if err := verifyRead(r, data, off, n); err != nil {
		rt.Fatal(err)
	}
}

// verifyRead reads n bytes at off and compares with what io.ReaderAt promises for data.
func verifyRead(r *Reader, data []byte, off, n int64) error {
	buf := make([]byte, n)
	got, err := r.ReadAt(context.Background(), buf, off)
	size := int64(len(data))
	want := max(0, min(n, size-off))
	if int64(got) != want {
		return fmt.Errorf("ReadAt(%d, %d) = %d bytes (%v), want %d", off, n, got, err, want)
	}
	if want < n && !errors.Is(err, io.EOF) {
		return fmt.Errorf("ReadAt(%d, %d) short read with error %v, want io.EOF", off, n, err)
	}
	if want == n && err != nil {
		return fmt.Errorf("ReadAt(%d, %d): %v", off, n, err)
	}
	if want > 0 && !bytes.Equal(buf[:want], data[off:off+want]) {
		return fmt.Errorf("ReadAt(%d, %d): wrong bytes", off, n)
	}
	return nil
}
