package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/ferry-oci/ferry/bundle"
)

// newProgress returns a bar on a terminal, plain log lines elsewhere, and
// nothing with --quiet.
func newProgress(g *globals) bundle.Progress {
	if g.quiet {
		return nil
	}
	if f, ok := g.err.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		w, _, err := term.GetSize(int(f.Fd()))
		if drawBar(true, w, err) {
			return &barProgress{w: g.err}
		}
	}
	return &lineProgress{w: g.err}
}

// drawBar says whether progress is a bar: only on a terminal that says how
// wide it is. One with no width (a serial console, some CI runners) would
// draw "||": plain lines there.
func drawBar(terminal bool, width int, sizeErr error) bool {
	return terminal && sizeErr == nil && width > 0
}

// barProgress draws a progressbar/v3 bar per phase.
type barProgress struct {
	w   io.Writer
	mu  sync.Mutex
	bar *progressbar.ProgressBar
}

func (p *barProgress) Start(phase string, total int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.bar = progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(p.w),
		progressbar.OptionSetDescription(fmt.Sprintf("%-7s", phase)),
		progressbar.OptionShowBytes(true),
		progressbar.OptionUseIECUnits(true), // MiB, as the summaries print
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionShowCount(),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionFullWidth(),
	)
}

func (p *barProgress) Add(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		p.bar.Add64(n)
	}
}

func (p *barProgress) Logf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		p.bar.Clear()
	}
	fmt.Fprintf(p.w, format+"\n", args...)
}

func (p *barProgress) Done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		p.bar.Finish()
		p.bar = nil
	}
}

// lineProgress logs a line when a phase starts, at every quarter, and when
// it ends: readable in CI logs and files.
type lineProgress struct {
	w                 io.Writer
	mu                sync.Mutex
	phase             string
	total, done, next int64
	start             time.Time
}

func (p *lineProgress) Start(phase string, total int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.phase, p.total, p.done, p.start = phase, total, 0, time.Now()
	p.next = total / 4
	fmt.Fprintf(p.w, "%s: %s\n", phase, bundle.HumanBytes(total))
}

func (p *lineProgress) Add(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += n
	if p.total > 0 && p.done >= p.next && p.done < p.total {
		fmt.Fprintf(p.w, "%s: %d%% (%s of %s)\n", p.phase, p.done*100/p.total, bundle.HumanBytes(p.done), bundle.HumanBytes(p.total))
		p.next += p.total / 4
	}
}

func (p *lineProgress) Logf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, format+"\n", args...)
}

func (p *lineProgress) Done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.phase != "" {
		fmt.Fprintf(p.w, "%s: done, %s in %s\n", p.phase, bundle.HumanBytes(p.done), time.Since(p.start).Round(time.Millisecond))
	}
	p.phase = ""
}
