// Package calibrate measures, on this machine and with Go 1.19, the
// operations concalloc's virtual-time cost table prices.  Run it through
// `concalloc calibrate` (which passes the size-class sizes and parses the
// output) or by hand:
//
//	GOMAXPROCS=1 go test -run XXX -bench . -benchtime 200ms
//
// Every benchmark runs on one P.  Allocation benchmarks turn the GC off and
// collect by hand, timer stopped, every 64 MiB, so the figure is mallocgc's
// own cost (with the zeroing of reused memory) and not the collector's.
//
// Besides ns/op (wall time), each benchmark reports cpu-ns/op: the process's
// user+system CPU time over the timed part (getrusage).  On a shared, loaded
// machine wall time counts the time the benchmark was not even running;
// CPU time does not, so calibration prefers it.
package calibrate

import (
	"flag"
	"fmt"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	_ "unsafe" // go:linkname
)

// The runtime's own flag: true while the write barrier is on (mark phase).
// Read only, to sort timed batches of stores into "barrier on" and "off".
//
//go:linkname writeBarrier runtime.writeBarrier
var writeBarrier struct {
	enabled bool
	pad     [3]byte
	needed  bool
	cgo     bool
	alignme uint64
}

var sizesFlag = flag.String("sizes", "16,32,48,64,128,256,512,1024,2048,4096,8192,16384,32768",
	"comma-separated small sizes to allocate (one size per class)")

const gcEvery = 64 << 20 // bytes allocated between hand-made collections

var sinkBytes [1024][]byte

// cpuClock accumulates process CPU time over the timed parts of a benchmark.
type cpuClock struct{ total, since int64 }

func cpuNow() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

func (c *cpuClock) start() { c.since = cpuNow() }
func (c *cpuClock) stop()  { c.total += cpuNow() - c.since }

// report stops the clock and reports CPU ns per op.
func (c *cpuClock) report(b *testing.B) {
	c.stop()
	b.ReportMetric(float64(c.total)/float64(b.N), "cpu-ns/op")
}

func timed(b *testing.B) *cpuClock {
	b.ResetTimer()
	c := &cpuClock{}
	c.start()
	return c
}

func sizes(b *testing.B) []int {
	var out []int
	for _, f := range strings.Split(*sizesFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			b.Fatalf("bad -sizes entry %q", f)
		}
		out = append(out, n)
	}
	return out
}

func allocLoop(b *testing.B, size int) {
	old := debug.SetGCPercent(-1)
	defer debug.SetGCPercent(old)
	runtime.GC()
	every := gcEvery / size
	if every < 1 {
		every = 1
	}
	c := timed(b)
	for i := 0; i < b.N; i++ {
		sinkBytes[i&1023] = make([]byte, size)
		if i%every == every-1 {
			b.StopTimer()
			c.stop()
			runtime.GC()
			c.start()
			b.StartTimer()
		}
	}
	c.report(b)
}

// BenchmarkAllocSmall/size=N: one pointer-free small allocation of N bytes.
func BenchmarkAllocSmall(b *testing.B) {
	for _, n := range sizes(b) {
		b.Run(fmt.Sprintf("size=%d", n), func(b *testing.B) { allocLoop(b, n) })
	}
}

// BenchmarkAllocTiny: an 8-byte pointer-free allocation (the tiny allocator).
func BenchmarkAllocTiny(b *testing.B) { allocLoop(b, 8) }

// BenchmarkAllocLarge/pages=N: a large allocation of N 8 KiB pages.
func BenchmarkAllocLarge(b *testing.B) {
	for _, pages := range []int{5, 6, 8, 12, 16, 24, 32, 128} {
		b.Run(fmt.Sprintf("pages=%d", pages), func(b *testing.B) { allocLoop(b, pages<<13) })
	}
}

var memclrBuf = make([]byte, 64<<10)

// BenchmarkMemclr: clearing 64 KiB (the loop compiles to memclrNoHeapPointers).
func BenchmarkMemclr(b *testing.B) {
	buf := memclrBuf
	b.SetBytes(int64(len(buf)))
	c := timed(b)
	for i := 0; i < b.N; i++ {
		for j := range buf {
			buf[j] = 0
		}
	}
	c.report(b)
}

type node struct {
	p *node
	x uintptr
}

const nodes = 1 << 12

func makeNodes() []*node {
	ns := make([]*node, nodes)
	for i := range ns {
		ns[i] = &node{}
	}
	return ns
}

// BenchmarkPtrLoad: one pointer load from a heap object.
func BenchmarkPtrLoad(b *testing.B) {
	ns := makeNodes()
	for i, n := range ns {
		n.p = ns[(i*7+1)&(nodes-1)]
	}
	p := ns[0]
	c := timed(b)
	for i := 0; i < b.N; i++ {
		p = p.p
	}
	c.report(b)
	sinkNode = p
}

var sinkNode *node

// BenchmarkPtrStore: one pointer store into a heap object, write barrier off.
func BenchmarkPtrStore(b *testing.B) {
	ns := makeNodes()
	c := timed(b)
	for i := 0; i < b.N; i++ {
		ns[i&(nodes-1)].p = ns[(i*7)&(nodes-1)]
	}
	c.report(b)
}

// BenchmarkPtrStoreWB times batches of 256 pointer stores while a goroutine
// collects a large pointer-rich heap over and over, and sorts the batches by
// the runtime's writeBarrier.enabled at both ends.  Reported: the median
// ns per store with the barrier on and with it off.
func BenchmarkPtrStoreWB(b *testing.B) {
	const batch = 256
	ns := makeNodes()
	big := make([]*node, 1<<20)
	for i := range big {
		big[i] = &node{}
		if i > 0 {
			big[i].p = big[i-1]
		}
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
				runtime.GC()
			}
		}
	}()
	var on, off []float64
	b.ResetTimer()
	for i := 0; i < b.N; i += batch {
		before := writeBarrier.enabled
		t0 := time.Now()
		for j := i; j < i+batch; j++ {
			ns[j&(nodes-1)].p = ns[(j*7)&(nodes-1)]
		}
		dt := float64(time.Since(t0).Nanoseconds()) / batch
		after := writeBarrier.enabled
		if before && after {
			on = append(on, dt)
		} else if !before && !after {
			off = append(off, dt)
		}
		if i%(batch*64) == 0 {
			runtime.Gosched() // let the collector's goroutine run on our one P
		}
	}
	b.StopTimer()
	close(stop)
	<-done
	b.ReportMetric(median(on), "ns/store-wb")
	b.ReportMetric(median(off), "ns/store-nowb")
	b.ReportMetric(float64(len(on)), "batches-wb")
	runtime.KeepAlive(big)
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	sort.Float64s(xs)
	return xs[len(xs)/2]
}

type node8 struct{ p [8]*node8 }

var liveHeap1 []*node
var liveHeap8 []*node8

// BenchmarkGC/objs=N/ptrs=K: runtime.GC() with N live objects of K pointer
// words each (16-byte objects with 1 pointer, 64-byte objects with 8).
func BenchmarkGC(b *testing.B) {
	for _, n := range []int{1 << 16, 1 << 18} {
		b.Run(fmt.Sprintf("objs=%d/ptrs=1", n), func(b *testing.B) {
			liveHeap1 = make([]*node, n)
			for i := range liveHeap1 {
				liveHeap1[i] = &node{}
				if i > 0 {
					liveHeap1[i].p = liveHeap1[i-1]
				}
			}
			gcLoop(b)
			liveHeap1 = nil
		})
		b.Run(fmt.Sprintf("objs=%d/ptrs=8", n), func(b *testing.B) {
			liveHeap8 = make([]*node8, n)
			for i := range liveHeap8 {
				liveHeap8[i] = &node8{}
				if i > 0 {
					for k := range liveHeap8[i].p {
						liveHeap8[i].p[k] = liveHeap8[i-1]
					}
				}
			}
			gcLoop(b)
			liveHeap8 = nil
		})
	}
}

func gcLoop(b *testing.B) {
	runtime.GC()
	c := timed(b)
	for i := 0; i < b.N; i++ {
		runtime.GC()
	}
	c.report(b)
}

// BenchmarkGCGarbage/spans=S: runtime.GC() after S spans' worth of 64-byte
// garbage (128 objects per 8 KiB span): the sweep's share of a cycle.
func BenchmarkGCGarbage(b *testing.B) {
	for _, spans := range []int{1 << 10, 1 << 12} {
		b.Run(fmt.Sprintf("spans=%d", spans), func(b *testing.B) {
			runtime.GC()
			c := timed(b)
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				c.stop()
				for j := 0; j < spans*128; j++ {
					sinkBytes[j&1023] = make([]byte, 64)
				}
				c.start()
				b.StartTimer()
				runtime.GC()
			}
			c.report(b)
		})
	}
}

// BenchmarkMutex: an uncontended sync.Mutex Lock+Unlock pair.
func BenchmarkMutex(b *testing.B) {
	var mu sync.Mutex
	c := timed(b)
	for i := 0; i < b.N; i++ {
		mu.Lock()
		mu.Unlock()
	}
	c.report(b)
}
