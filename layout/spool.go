package layout

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// spool is a scratch file of the manifests a graph has read, for a graph
// with no bundle to read them again from (an export's, before the bundle
// exists): each is appended once, and read again, verified, when it goes
// into the bundle. Tens of thousands of manifests are then on disk, not
// in memory, between the plan and the transfer.
type spool struct {
	f    *os.File
	name string // removed at close when it could not be at creation

	mu   sync.Mutex
	end  int64                   // where the next one goes
	at   map[digest.Digest]int64 // where each one is
	werr error                   // the first write that failed: every later put fails with it
}

func newSpool(dir string) (*spool, error) {
	f, err := os.CreateTemp(dir, TempPrefix+"manifests-")
	if err != nil {
		return nil, fmt.Errorf("creating a scratch file for the manifests: %w (set TMPDIR to a writable directory)", err)
	}
	s := &spool{f: f, at: map[digest.Digest]int64{}}
	// Unlinked at once where the system allows it: nothing outlives the
	// process, however it ends.
	if err := os.Remove(f.Name()); err != nil {
		s.name = f.Name()
	}
	return s, nil
}

// put appends the verified bytes of desc, once. It writes under the lock:
// a manifest another walk is putting is never read back half written.
func (s *spool) put(desc ocispec.Descriptor, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.at[desc.Digest]; ok || s.werr != nil {
		return s.werr
	}
	if _, err := s.f.WriteAt(data, s.end); err != nil {
		s.werr = fmt.Errorf("writing manifest %s to the scratch file %s: %w", desc.Digest, s.f.Name(), err)
		return s.werr
	}
	s.at[desc.Digest] = s.end
	s.end += int64(len(data))
	return nil
}

// Fetch reads desc back; ReadManifest verifies it.
func (s *spool) Fetch(_ context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	s.mu.Lock()
	off, ok := s.at[desc.Digest]
	s.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("manifest %s: %w: not in the scratch file", desc.Digest, ErrBlobNotFound)
	}
	return io.NopCloser(io.NewSectionReader(s.f, off, desc.Size)), nil
}

func (s *spool) close() error {
	err := s.f.Close()
	if s.name != "" {
		if rerr := os.Remove(s.name); err == nil {
			err = rerr
		}
	}
	return err
}
