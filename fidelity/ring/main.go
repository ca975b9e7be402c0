// Command ring is concalloc's `ring` workload written in Go, so that Go 1.19's
// own collector can be run on the same allocation pattern and its gctrace
// compared with concalloc's (see docs/gc-fidelity.md).
//
// The pattern mirrors concalloc/workloads/ring.py step for step:
//
//	for i := 0; i < steps; i++ {
//		x := new object of size bytes (pointer-free if -noscan)
//		if !noscan && slot[(i-1) mod live] != nil { x.word0 = slot[(i-1) mod live] }
//		slot[i mod live] = x
//	}
//
// The slots are roots on the goroutine's stack, as concalloc's are stack slots
// of the mutator: they live in an array in run's frame, of -live slots for
// the -live values the experiment uses (see slotArray; checked with
// -gcflags=-m: nothing but the objects escapes).  An object with a pointer is
// allocated with a type built at run time (one pointer word, then size-8
// pointer-free bytes) so its pointer bitmap is exactly ring.py's
// Type(size, [0]); a -noscan object is a []byte of size bytes.  Nothing else
// is allocated per step and nothing is printed until the end, when one JSON
// line of runtime.MemStats goes to stdout (Mallocs - steps is the garbage the
// program itself made: runtime init and flag parsing).
//
// -cut additionally clears the oldest object's pointer after each step, so the
// reachable chain is exactly -live objects.  Without it the newest object
// reaches every object ever allocated through the chain, which is what
// ring.py does today.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"reflect"
	"runtime"
	"runtime/trace"
	"unsafe"
)

// maxLive bounds -live: the slots are a fixed array on the stack.
const maxLive = 1 << 15

// slotArray is the stack array holding the ring's slots.  Go scans a
// goroutine's whole stack and counts it in the heap goal (stack bytes x
// GOGC/100), so the frame should hold exactly -live slots, as concalloc's
// mutator stack does: the -live values the fidelity experiment uses get an
// array of exactly that length; any other -live uses the maxLive array.
type slotArray interface {
	[1000]unsafe.Pointer | [5000]unsafe.Pointer | [20000]unsafe.Pointer | [maxLive]unsafe.Pointer
}

func main() {
	live := flag.Int("live", 1000, "ring slots (live objects)")
	size := flag.Int("size", 64, "bytes per object")
	noscan := flag.Bool("noscan", false, "pointer-free objects")
	steps := flag.Int("steps", 1000000, "allocations")
	cut := flag.Bool("cut", false, "clear the oldest object's pointer each step (chain of exactly -live objects)")
	traceOut := flag.String("trace", "", "write a runtime/trace execution trace of the run to this file")
	flag.Parse()
	if *live < 1 || *live > maxLive {
		usage(fmt.Sprintf("-live must be in [1, %d], got %d", maxLive, *live))
	}
	if *noscan && *size < 1 {
		usage(fmt.Sprintf("-size must be >= 1, got %d", *size))
	}
	if !*noscan && (*size < 8 || *size%8 != 0) {
		usage(fmt.Sprintf("a ring object with a pointer needs a multiple of 8 bytes >= 8 (got %d); use -noscan", *size))
	}
	if *steps < 0 {
		usage(fmt.Sprintf("-steps must be >= 0, got %d", *steps))
	}
	var newObject func() unsafe.Pointer
	if *noscan {
		n := *size
		newObject = func() unsafe.Pointer {
			b := make([]byte, n)
			return unsafe.Pointer(&b[0])
		}
	} else {
		typ := objectType(*size)
		newObject = func() unsafe.Pointer { return reflect.New(typ).UnsafePointer() }
	}
	if *traceOut != "" {
		stop := startTrace(*traceOut)
		defer stop()
	}
	switch *live {
	case 1000:
		run[[1000]unsafe.Pointer](*live, *steps, !*noscan, *cut, newObject)
	case 5000:
		run[[5000]unsafe.Pointer](*live, *steps, !*noscan, *cut, newObject)
	case 20000:
		run[[20000]unsafe.Pointer](*live, *steps, !*noscan, *cut, newObject)
	default:
		run[[maxLive]unsafe.Pointer](*live, *steps, !*noscan, *cut, newObject)
	}

	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	json.NewEncoder(os.Stdout).Encode(map[string]uint64{
		"steps": uint64(*steps), "num_gc": uint64(ms.NumGC), "mallocs": ms.Mallocs,
		"total_alloc": ms.TotalAlloc, "heap_alloc": ms.HeapAlloc, "next_gc": ms.NextGC,
	})
}

// objectType is struct{ Next unsafe.Pointer; Pad [size-8]byte }: one pointer
// word at offset 0, like ring.py's Type(f"ring{size}", size, [0]).
func objectType(size int) reflect.Type {
	fields := []reflect.StructField{{Name: "Next", Type: reflect.TypeOf(unsafe.Pointer(nil))}}
	if size > 8 {
		fields = append(fields, reflect.StructField{Name: "Pad", Type: reflect.ArrayOf(size-8, reflect.TypeOf(byte(0)))})
	}
	t := reflect.StructOf(fields)
	if int(t.Size()) != size {
		panic(fmt.Sprintf("object type has size %d, want %d", t.Size(), size))
	}
	return t
}

//go:noinline
func run[A slotArray](live, steps int, pointers, cut bool, newObject func() unsafe.Pointer) {
	var slots A
	for i := 0; i < steps; i++ {
		x := newObject()
		if pointers {
			if prev := slots[(i+live-1)%live]; prev != nil {
				*(*unsafe.Pointer)(x) = prev
			}
		}
		slots[i%live] = x
		if pointers && cut {
			if oldest := slots[(i+1)%live]; oldest != nil {
				*(*unsafe.Pointer)(oldest) = nil
			}
		}
	}
	runtime.KeepAlive(&slots)
}

// startTrace starts a runtime/trace execution trace into path (to see which
// goroutine each P runs during a mark phase: docs/gc-fidelity.md); the
// returned function stops it.
func startTrace(path string) func() {
	f, err := os.Create(path)
	if err != nil {
		usage(err.Error())
	}
	if err := trace.Start(f); err != nil {
		usage(err.Error())
	}
	return func() { trace.Stop(); f.Close() }
}

func usage(msg string) {
	fmt.Fprintln(os.Stderr, "ring:", msg)
	os.Exit(2)
}
