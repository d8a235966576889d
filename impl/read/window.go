package read

// The prefetch window: which chunks exist, when new ones are started and when old ones go.
// Everything here runs with r.mu held and only starts goroutines; it never waits.

// startStream makes the read at [off, end) the first of a sequential stream, with a window
// of InitialWindow so the first bytes come from a small, fast GET.
// LOCKS_REQUIRED(r.mu)
func (r *Reader) startStream(off, end int64) {
	r.streaming = true
	r.setWindow(r.cfg.InitialWindow)
	r.frontier = max(r.frontier, end)
	r.move(off, end)
}

// advance records a read that belongs to the stream: one that makes progress doubles the
// window (up to maxWindow), and a late one (behind the frontier) changes nothing but is
// still served from the chunks it finds.
// LOCKS_REQUIRED(r.mu)
func (r *Reader) advance(off, end int64) {
	if end > r.frontier {
		r.frontier = end
		r.setWindow(min(2*r.window, r.maxWindow))
		r.behind = 0
	}
	r.move(off, end)
}

// move frees what is behind, tops the window up, and makes sure nothing will later fetch
// [off, end) a second time.
// LOCKS_REQUIRED(r.mu)
func (r *Reader) move(off, end int64) {
	if off > r.next+r.cfg.tune.aheadSlack {
		// A forward skip inside the window: do not fetch the bytes skipped over; a late read
		// of them is served directly. A shorter skip is a read the kernel sent ahead of
		// others of its burst, which are on their way.
		r.next = off
	}
	r.freeBehind(min(off, r.frontier-r.cfg.tune.keepBehind))
	r.prefetch()
	if end > r.next {
		// Memory or the in-flight cap stopped the prefetch short of this read: its tail is
		// fetched straight into the caller's buffer, so the stream continues after it.
		r.next = end
	}
}

// prefetch starts part GETs from next until the window ahead of the frontier is covered,
// MaxInFlight GETs run, or the budget refuses memory. A refusal is the back-pressure: the
// window simply stops growing until memory is released.
// LOCKS_REQUIRED(r.mu)
func (r *Reader) prefetch() {
	if !r.streaming || r.closed {
		return
	}
	target := min(r.size, r.frontier+r.window)
	for r.next < target && r.inflight < r.cfg.MaxInFlight {
		n := min(r.window, r.cfg.PartSize, r.size-r.next)
		// Clip at the next part boundary so that, once the window is large, every GET is
		// one aligned part.
		if boundary := (r.next/r.cfg.PartSize + 1) * r.cfg.PartSize; r.next+n > boundary {
			n = boundary - r.next
		}
		if !r.reserve(n) {
			return
		}
		r.start(r.next, r.next+n)
		r.next += n
	}
}

// seek handles a read outside the stream: everything held is dropped and the read is
// fetched with one small GET, rounded up so that a neighbouring read finds it in memory. A
// following read next to it starts a new stream with a small window.
// LOCKS_REQUIRED(r.mu)
func (r *Reader) seek(off, end int64) {
	r.dropAll()
	r.streaming = false
	r.behind = 0
	r.setWindow(0)
	r.frontier = end
	r.next = end
	n := min((end-off+r.cfg.tune.randomAlign-1)/r.cfg.tune.randomAlign*r.cfg.tune.randomAlign, r.size-off)
	if r.reserve(n) {
		r.start(off, off+n)
		r.next = off + n
	}
	// Otherwise memory is short and the read goes straight into the caller's buffer.
}

// reserve takes n bytes of the budget if they are free now. A chunk larger than the whole
// budget is refused rather than granted alone (as Budget would): its bytes are read directly.
// LOCKS_REQUIRED(r.mu)
func (r *Reader) reserve(n int64) bool {
	return n <= r.cfg.Budget.Limit() && r.cfg.Budget.TryAcquire(n)
}

// buffered reports whether a chunk holds (or is fetching) off.
// LOCKS_REQUIRED(r.mu)
func (r *Reader) buffered(off int64) bool {
	for _, c := range r.chunks {
		if c.start <= off && off < c.end {
			return true
		}
	}
	return false
}

// segments splits [off, end) into pieces served by chunks (pinned here) and holes.
// LOCKS_REQUIRED(r.mu)
func (r *Reader) segments(off, end int64) []segment {
	var segs []segment
	pos := off
	for _, c := range r.chunks {
		if c.end <= pos {
			continue
		}
		if c.start >= end {
			break
		}
		if c.start > pos {
			segs = append(segs, segment{off: pos, end: c.start})
		}
		e := min(end, c.end)
		c.refs++
		segs = append(segs, segment{c: c, off: max(pos, c.start), end: e})
		pos = e
	}
	if pos < end {
		segs = append(segs, segment{off: pos, end: end})
	}
	return segs
}

// freeBehind drops chunks that end at or before off.
// LOCKS_REQUIRED(r.mu)
func (r *Reader) freeBehind(off int64) {
	i := 0
	for i < len(r.chunks) && r.chunks[i].end <= off {
		r.drop(r.chunks[i])
		i++
	}
	r.chunks = r.chunks[i:]
}

// dropAll drops every chunk.
// LOCKS_REQUIRED(r.mu)
func (r *Reader) dropAll() {
	for _, c := range r.chunks {
		r.drop(c)
	}
	r.chunks = nil
}

// drop cancels c's GET and gives up the list's reference to it; the caller removes it from
// r.chunks. Reads still waiting on it fetch what it lacks directly.
// LOCKS_REQUIRED(r.mu)
func (r *Reader) drop(c *chunk) {
	c.dropped = true
	c.cancel()
	c.wakeAll()
	r.unref(c)
}

// remove takes c out of r.chunks if it is still there, giving up the list's reference.
// LOCKS_REQUIRED(r.mu)
func (r *Reader) remove(c *chunk) {
	for i, x := range r.chunks {
		if x == c {
			r.chunks = append(r.chunks[:i], r.chunks[i+1:]...)
			r.unref(c)
			return
		}
	}
}

// unref releases c's memory with its last reference: the list, its GET and each read
// copying from it each hold one, so memory is never reused while it is still being read.
// LOCKS_REQUIRED(r.mu)
func (r *Reader) unref(c *chunk) {
	c.refs--
	if c.refs == 0 {
		// Nobody reads buf any more: the GET has ended (it held a reference) and every copy
		// out of it has too.
		if c.buf != nil {
			putBuf(c.buf)
		}
		c.buf = nil
		r.cfg.Budget.Release(c.end - c.start)
	}
}

// setWindow sets the window and tells the mount's Stats of the change.
// LOCKS_REQUIRED(r.mu)
func (r *Reader) setWindow(w int64) {
	if r.cfg.Stats != nil {
		r.cfg.Stats.Window.Add(w - r.window)
	}
	r.window = w
}
