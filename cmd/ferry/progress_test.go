package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/ferry-oci/ferry/bundle"
)

// The bar counts in the same units as the summary printed after it.
func TestBarCountsInSummaryUnits(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	p := &barProgress{w: &out}
	const total = 300 << 20
	p.Start("push", total)
	p.Add(total / 2) // the first Add draws the bar; a finished bar is cleared
	got := out.String()
	p.Done()
	if want := "(150/300 MiB"; !strings.Contains(got, want) {
		t.Errorf("bar output lacks %q:\n%q", want, got)
	}
	if strings.Contains(got, " MB") {
		t.Errorf("bar output counts in decimal MB:\n%q", got)
	}
	if summary := bundle.HumanBytes(total); summary != "300.0 MiB" {
		t.Errorf("summary prints %q, the bar %q", summary, got)
	}
}

func TestNoBarWithoutAWindowSize(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		terminal bool
		width    int
		err      error
		want     bool
	}{{true, 80, nil, true}, {true, 0, nil, false}, {true, 80, errors.New("no size"), false}, {false, 80, nil, false}} {
		if got := drawBar(tt.terminal, tt.width, tt.err); got != tt.want {
			t.Errorf("drawBar(%v, %d, %v) = %v, want %v", tt.terminal, tt.width, tt.err, got, tt.want)
		}
	}
}
