package layout

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
)

// syncBehindEvery is how many bytes a SyncBehind lets pile up before it
// starts an fsync in the background.
const syncBehindEvery = 64 << 20

// SyncBehind writes to a file and fsyncs it in the background every
// syncBehindEvery bytes, one fsync at a time, so that the disk writes back
// while the writer goes on and the final Sync has little left to wait for.
// Write is for one goroutine; Sync is called once the writing is done.
type SyncBehind struct {
	f       *os.File
	every   int64 // syncBehindEvery; smaller in tests
	pending int64
	busy    atomic.Bool
	running sync.WaitGroup
	mu      sync.Mutex
	err     error // the first background fsync that failed
}

// NewSyncBehind wraps f.
func NewSyncBehind(f *os.File) *SyncBehind { return &SyncBehind{f: f, every: syncBehindEvery} }

func (s *SyncBehind) Write(p []byte) (int, error) {
	n, err := s.f.Write(p)
	s.pending += int64(n)
	if s.pending >= s.every && s.busy.CompareAndSwap(false, true) {
		s.pending = 0
		s.running.Add(1)
		go func() {
			defer s.running.Done()
			defer s.busy.Store(false)
			if err := s.f.Sync(); err != nil {
				s.mu.Lock()
				if s.err == nil {
					s.err = err
				}
				s.mu.Unlock()
			}
		}()
	}
	return n, err
}

// Wait waits for the background fsync, if one runs, without starting
// another: for a file about to be dropped.
func (s *SyncBehind) Wait() { s.running.Wait() }

// Sync waits for the background fsync, if one runs, and makes everything
// written durable; it reports the first fsync that failed.
func (s *SyncBehind) Sync() error {
	s.running.Wait()
	s.mu.Lock()
	err := s.err
	s.mu.Unlock()
	if err == nil {
		err = s.f.Sync()
	}
	if err != nil {
		return fmt.Errorf("syncing %s: %w", s.f.Name(), err)
	}
	return nil
}
