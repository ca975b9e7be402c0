// Command barrier measures what bench's gc.barrier_store_ratio measures, in
// Go 1.19 itself: a pointer store right after gcStart has switched the write
// barrier on (nothing drained yet, so the buffer's flushes grey what they
// shade), against the same store with the collector off.
//
// The graph and the stores are the bench's MarkHarness: `live` nodes of 32
// bytes (next, other, two scalars), each linked to the one before and to a
// random earlier one, one garbage node after every fourth; then `batch`
// stores obj.other = ptr over random (obj, ptr) pairs, the same pairs every
// time.
//
// A cycle is started the way the bench's allocation slow path starts one:
// with GOGC at 1 the program allocates until an allocation's trigger test
// passes; gcStart returns to this goroutine at once, with the barrier on.
// Run with GOMAXPROCS=1, no mark worker gets the P during the batch (a
// fractional worker waits for a scheduling point; the stores allocate
// nothing, so they never assist), so the batch sees a heap nobody has marked:
// the bench's subject.  The barrier's state is read from runtime.writeBarrier
// (linkname), and a batch that ends outside the mark phase is not counted.
//
// Then the same batch again, still in the same mark phase: every pointer it
// records was shaded by the first batch (the bench's _marked variant).
//
// Output: one JSON object of medians (ns per store).  Build with
// -ldflags=-w: the linker cannot write DWARF for a linknamed runtime variable.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"runtime"
	"runtime/debug"
	"sort"
	"time"
	_ "unsafe" // go:linkname
)

// wbFlags is the layout of runtime.writeBarrier in Go 1.19 (mgc.go).
type wbFlags struct {
	enabled bool
	pad     [3]byte
	needed  bool
	cgo     bool
	alignme uint64
}

//go:linkname writeBarrier runtime.writeBarrier
var writeBarrier wbFlags

type node struct {
	next, other *node
	a, b        int
}

type pair struct{ obj, ptr *node }

var (
	sink    []byte
	garbage *node
)

func median(x []float64) float64 {
	s := append([]float64(nil), x...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func graph(live int, rng *rand.Rand) []*node {
	nodes := make([]*node, 0, live)
	for i := 0; i < live; i++ {
		x := &node{a: i}
		if i > 0 {
			x.next = nodes[i-1]
			x.other = nodes[rng.Intn(i)]
		}
		nodes = append(nodes, x)
		if i%4 == 3 {
			garbage = &node{next: x} // dropped by the next one: the first cycle's white objects
		}
	}
	return nodes
}

func main() {
	live := flag.Int("live", 12500, "live nodes")
	batch := flag.Int("batch", 8192, "stores per batch")
	reps := flag.Int("reps", 51, "batches on each side")
	flag.Parse()
	rng := rand.New(rand.NewSource(2))
	nodes := graph(*live, rng)
	pairs := make([]pair, *batch)
	for i := range pairs {
		pairs[i] = pair{nodes[rng.Intn(*live)], nodes[rng.Intn(*live)]}
	}
	stores := func() float64 {
		t0 := time.Now()
		for _, pr := range pairs {
			pr.obj.other = pr.ptr
		}
		return float64(time.Since(t0).Nanoseconds()) / float64(len(pairs))
	}
	var floor, early, marked []float64
	outside := 0
	for r := 0; r < *reps; r++ {
		debug.SetGCPercent(-1) // waits for a cycle in flight: none runs now
		floor = append(floor, stores())
		debug.SetGCPercent(1)
		for !writeBarrier.enabled {
			sink = make([]byte, 4096)
		}
		ns := stores()
		ns2 := stores()
		if writeBarrier.enabled {
			early = append(early, ns)
			marked = append(marked, ns2)
		} else {
			outside++
		}
		runtime.GC() // finish this cycle (and run one more), untimed
	}
	if len(early) == 0 {
		fmt.Fprintln(os.Stderr, "barrier: every batch ended outside the mark phase")
		os.Exit(1)
	}
	out := map[string]any{
		"go":                         runtime.Version(),
		"gomaxprocs":                 runtime.GOMAXPROCS(0),
		"live":                       *live,
		"batch":                      *batch,
		"reps":                       *reps,
		"batches_outside_mark":       outside,
		"store_nobarrier_ns":         median(floor),
		"store_barrier_ns":           median(early),
		"store_barrier_marked_ns":    median(marked),
		"barrier_store_ratio":        median(early) / median(floor),
		"barrier_store_ratio_marked": median(marked) / median(floor),
	}
	b, _ := json.MarshalIndent(out, "", " ")
	fmt.Println(string(b))
}
