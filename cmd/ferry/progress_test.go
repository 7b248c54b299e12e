package main

import (
	"bytes"
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
