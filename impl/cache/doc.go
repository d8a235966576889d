// Package cache owns caching object data across reads, handles and mounts: an s3.Store
// decorator that serves versioned reads (Get with an If-Match ETag) from blocks kept in a
// local directory (NewDisk: --cache, --max-cache-size) or in a second bucket shared by
// many mounts (NewShared: --cache-xz), and fetches only the blocks it lacks.
//
// Because it is a Store, nothing above it changes: the prefetcher's GETs simply get
// faster. It must not know about files, inodes, handles or FUSE; it knows objects, ETags
// and byte ranges only.
//
// # Blocks
//
// An object version is cut into aligned blocks of BlockSize bytes (the last one short). A
// block is named by a hash of bucket, key, ETag, block size and index, so a changed
// object (new ETag) never meets its old blocks, and writes need not invalidate anything.
// Each block carries a header naming it (to catch hash collisions), the object's size when
// known (so reads at the end are answered without asking the store) and a CRC32C over
// header and data: a corrupt or truncated block is a miss, dropped and refetched, never
// served. Missing blocks are fetched whole, one ranged GET for each contiguous run of them.
//
// # Concurrency
//
// All methods are safe for concurrent use. Every access to a block (load, fetch, store) is
// a "flight" in engine.flights: concurrent Gets of a block wait for the one flight instead
// of reading or fetching it again, and get its bytes as they arrive (every 64 KiB), not
// once the whole block has. A fetch runs in its own goroutine, so a Get waiting on another
// Get's fetch never depends on how fast that Get's caller reads. No lock is held across I/O
// to the inner store or to a backend; the disk index lock covers only the index and the
// unlink of evicted files. engine.mu, flight.mu and diskStore.mu are never held together.
package cache
