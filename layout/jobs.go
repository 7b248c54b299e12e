package layout

import "runtime"

// DefaultJobs is how many blobs move (or are hashed) at once, in every
// package, when an options struct leaves Jobs at zero: four per CPU, at
// least 8 and at most 32. A transfer mostly waits (on the network, on the
// registry's fsync), and each one hashes on at most one core, so a few per
// core keep the cores and the link busy without opening more connections
// than a registry expects from a client. On 2 cores that is 8; --jobs 2, 4
// and 8 were measured there, and 8 was as fast as any.
func DefaultJobs() int { return min(max(4*runtime.NumCPU(), 8), 32) }

// JobsOrDefault is n, or DefaultJobs when n is not positive.
func JobsOrDefault(n int) int {
	if n <= 0 {
		return DefaultJobs()
	}
	return n
}
