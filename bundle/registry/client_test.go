package registry

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// TestRepositorySharedWhileHeldThenReleased: callers at the same time get
// one instance (oras-go serialises referrers-index updates per instance),
// and instances nobody holds are let go, so tens of thousands of
// repositories are not kept to the end of a run.
func TestRepositorySharedWhileHeldThenReleased(t *testing.T) {
	c, err := New(Destination, Options{PlainHTTP: true}, "127.0.0.1:5000")
	if err != nil {
		t.Fatal(err)
	}
	held, err := c.Repository("127.0.0.1:5000", "team/app")
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		runtime.GC()
	}
	again, err := c.Repository("127.0.0.1:5000", "team/app")
	if err != nil {
		t.Fatal(err)
	}
	if again != held {
		t.Fatal("a repository still held got a second instance: concurrent referrer pushes would not be serialised")
	}
	for i := range 5000 {
		if _, err := c.Repository("127.0.0.1:5000", fmt.Sprintf("team/app%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	// Cleanups run after a collection, on their own goroutine: wait for
	// the count to fall, with a deadline.
	deadline := time.Now().Add(20 * time.Second)
	cached := func() int {
		c.repos.mu.Lock()
		defer c.repos.mu.Unlock()
		return len(c.repos.m)
	}
	for cached() > 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d repositories still cached after the callers let them go, want 1 (the one held)", cached())
		}
		runtime.GC()
		runtime.Gosched()
	}
	// A Go map keeps its table when entries go: it is made anew.
	c.repos.mu.Lock()
	high := c.repos.high
	c.repos.mu.Unlock()
	if high > 2000 {
		t.Fatalf("the cache's map was sized for %d entries after 5,000 came and went, want it made anew", high)
	}
	if got, _ := c.Repository("127.0.0.1:5000", "team/app"); got != held {
		t.Fatal("the held repository was dropped from the cache")
	}
	runtime.KeepAlive(held)
	if _, err := c.Repository("127.0.0.1:5000", "Bad/Name"); err == nil {
		t.Fatal("an invalid repository name was accepted")
	}
}
