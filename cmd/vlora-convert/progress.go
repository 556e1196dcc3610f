package main

import (
	"io"
	"os"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/vlora-convert/vlora-convert/stage"
)

// isTerminal reports whether w is a character device (an interactive
// terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progressBar is a bar on w (the error stream) with ETA; when w is not a
// terminal, a plain line every stage.DefaultLineInterval instead; a no-op
// when quiet.
type progressBar struct {
	p     *mpb.Progress
	bar   *mpb.Bar
	msg   *string
	lines *stage.LineReporter
}

func newProgress(w io.Writer, quiet bool, name string, total int64, extra func() string) *progressBar {
	if quiet {
		return &progressBar{}
	}
	if !isTerminal(w) {
		lr := stage.NewLineReporter(w, name, 0, extra)
		lr.SetTotal(total)
		return &progressBar{lines: lr}
	}
	p := mpb.New(mpb.WithOutput(w), mpb.WithWidth(40), mpb.WithRefreshRate(150*time.Millisecond))
	decs := []decor.Decorator{decor.CountersNoUnit(" %d/%d"), decor.Name(" ETA "), decor.AverageETA(decor.ET_STYLE_GO)}
	if extra != nil {
		decs = append(decs, decor.Any(func(decor.Statistics) string { return " " + extra() }))
	}
	bar := p.AddBar(total, mpb.PrependDecorators(decor.Name(name, decor.WC{W: len(name) + 1, C: decor.DindentRight})),
		mpb.AppendDecorators(decs...))
	return &progressBar{p: p, bar: bar}
}

// Report moves the bar to a stage's progress.
func (b *progressBar) Report(p stage.Progress) {
	if b.lines != nil {
		b.lines.Report(p)
	}
	if b.bar != nil {
		b.bar.SetTotal(int64(p.Total), false)
		b.bar.SetCurrent(int64(p.Done))
	}
}

// Set moves the bar to done.
func (b *progressBar) Set(done int64) {
	if b.lines != nil {
		b.lines.Set(done)
	}
	if b.bar != nil {
		b.bar.SetCurrent(done)
	}
}

// Close finishes the bar (aborting it when it did not complete).
func (b *progressBar) Close() {
	if b.p == nil {
		return
	}
	if !b.bar.Completed() {
		b.bar.Abort(false)
	}
	b.p.Wait()
}

// bars makes the progress bars of one command: on w (the error stream),
// plain lines when w is not a terminal, none when quiet.
type bars struct {
	w     io.Writer
	quiet bool
}

// start returns a new bar named name; its total comes with the first report.
func (b bars) start(name string) *progressBar { return newProgress(b.w, b.quiet, name, 1, nil) }

// heartbeat starts the plain progress of a stage that cannot count its
// work (stage.Heartbeat) when w is not a terminal and not quiet; stop ends
// it.
func heartbeat(w io.Writer, quiet bool, name string) (stop func()) {
	if quiet || isTerminal(w) {
		return func() {}
	}
	return stage.Heartbeat(w, name, 0)
}
