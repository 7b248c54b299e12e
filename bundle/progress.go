package bundle

import (
	"fmt"
	"io"
	"time"
)

// Progress receives the events of a long operation. Implementations must be
// safe for concurrent use. A nil Progress in an options struct means
// silence. verify and delta take the parts of it they use, so one value
// serves every package.
type Progress interface {
	// Start begins a phase that will move total bytes.
	Start(phase string, total int64)
	// Add reports n more bytes moved (or hashed) in the current phase.
	Add(n int64)
	// Logf reports one notable event, such as a blob skipped or a tag moved.
	Logf(format string, args ...any)
	// Done ends the current phase.
	Done()
}

type noProgress struct{}

func (noProgress) Start(string, int64) {}
func (noProgress) Add(int64)           {}
func (noProgress) Logf(string, ...any) {}
func (noProgress) Done()               {}

func progressOrNone(p Progress) Progress {
	if p == nil {
		return noProgress{}
	}
	return p
}

// countingReader reports every byte read to a Progress.
type countingReader struct {
	r io.Reader
	p adder
}

type adder interface{ Add(int64) }

// progressFunc adapts a func to what countingReader reports to.
type progressFunc func(int64)

func (f progressFunc) Add(n int64) { f(n) }

func (c countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	if n > 0 {
		c.p.Add(int64(n))
	}
	return n, err
}

// ExportSummary says what an export did. Blobs are counted once each,
// whatever the number of images that share them.
type ExportSummary struct {
	Images int
	// Referrers counts the signatures, attestations, SBOMs and other
	// artifacts that travel with the images.
	Referrers int
	// Blobs is the number of distinct blobs (manifests included) in the
	// plan; Bytes, the size of all of them.
	Blobs int
	Bytes int64
	// Transferred counts the blobs fetched from the source in this run.
	Transferred      int
	TransferredBytes int64
	// Skipped counts the blobs already in the bundle (a resumed export).
	Skipped      int
	SkippedBytes int64
	// Omitted counts the blobs a baseline said need not travel.
	Omitted      int
	OmittedBytes int64
	// Foreign counts the foreign or non-distributable layers left out
	// (ExportOptions.IncludeForeign carries them).
	Foreign      int
	ForeignBytes int64
	Duration     time.Duration
}

// Throughput is the transferred bytes per second.
func (s *ExportSummary) Throughput() float64 { return perSecond(s.TransferredBytes, s.Duration) }

// ImportSummary says what an import did (or, in a dry run, would do: the
// plan decides every count, so a dry run's numbers are the real run's).
// Blobs are counted the way export counts them: each digest once,
// manifests included; what happens per destination repository is counted
// apart, as repository × blob pairs.
type ImportSummary struct {
	Images int
	// Signed says the bundle carries a signature; SignatureVerified, that
	// it was checked against a key given (VerifyKeys) and verified.
	Signed, SignatureVerified bool
	// Blobs and Bytes count the distinct blobs (manifests included) the
	// bundle's images and referrers need; Sent of them were sent in this
	// run, and the other Blobs - Sent the destination had already (in
	// some repository, or, for a delta, where its baseline says).
	Blobs     int
	Bytes     int64
	Sent      int
	SentBytes int64
	// Foreign counts the foreign or non-distributable layers the bundle
	// does not carry and the destination need not hold (the runtime
	// fetches them from their URLs); they are among Blobs, not Sent.
	Foreign int
	// Per repository × config or layer: Uploads sent, Mounted from another
	// repository of the destination, InPlace already there.
	Uploads, Mounted, InPlace int
	// Per repository × manifest (referrers' manifests apart):
	// ManifestsPushed, ManifestsPresent.
	ManifestsPushed, ManifestsPresent int
	// ReferrersPushed counts the referrers pushed; ReferrersPresent, those
	// the destination listed already.
	ReferrersPushed, ReferrersPresent int
	// Untagged lists the images the bundle names by digest alone (a layout
	// entry with no name): pushed by digest, with no tag.
	Untagged []string
	// TagsMoved lists destination tags that pointed elsewhere and were moved;
	// TagsSet, tags that were created; TagsUnchanged, tags already right.
	TagsMoved     []string
	TagsSet       []string
	TagsUnchanged int
	Duration      time.Duration
}

// Throughput is the transferred bytes per second.
func (s *ImportSummary) Throughput() float64 { return perSecond(s.SentBytes, s.Duration) }

func perSecond(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// HumanBytes renders n in binary units.
func HumanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
