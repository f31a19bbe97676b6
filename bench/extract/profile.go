package main

import (
	"io"
	"log"
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"time"
)

// startProfile writes a CPU profile to path until the returned function is
// called; with an empty path it does nothing.
func startProfile(path string) func() {
	return record(path, pprof.StartCPUProfile, pprof.StopCPUProfile)
}

// startTrace writes an execution trace (go tool trace) to path until the
// returned function is called; with an empty path it does nothing.
func startTrace(path string) func() { return record(path, trace.Start, trace.Stop) }

// record runs start on a new file at path and returns what stops it and
// closes the file.
func record(path string, start func(io.Writer) error, stop func()) func() {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		log.Fatal(err)
	}
	if err := start(f); err != nil {
		log.Fatal(err)
	}
	return func() {
		stop()
		f.Close()
	}
}

// watchHeap writes a heap profile to path each time the heap in use reaches
// a new peak (checked every 200ms), until the returned function is called.
func watchHeap(path string) func() {
	if path == "" {
		return func() {}
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		var peak uint64
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak+(8<<20) {
				peak = m.HeapInuse
				f, err := os.Create(path)
				if err != nil {
					log.Fatal(err)
				}
				pprof.Lookup("heap").WriteTo(f, 0)
				f.Close()
				log.Printf("heap in use %d MiB, sys %d MiB", m.HeapInuse>>20, m.Sys>>20)
			}
		}
	}()
	return func() { close(stop); <-done }
}
