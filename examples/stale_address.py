"""stale_address: the one rule a moving allocator adds, broken on purpose.

The workload keeps the address of one node in a Python local (and in stack
slot 0, so the node stays alive) and stores into it after every allocation.
Under Go's allocator and the non-moving methods that is fine: the slot keeps
the node alive and it never moves.  Under --allocator bump, Cheney's
collector moves the node at the first collection and fixes slot 0, but not
the local, so the next store goes to the node's old address in the idle
semispace.  With heapcheck=2 the pointer oracle names it:

    concalloc run --allocator bump --workload examples/stale_address.py --steps 400 \\
        --scheduler random --gogc 0 --godebug heapcheck=2        # mutator.stale_pointer
    concalloc run --allocator first-fit --workload examples/stale_address.py --steps 400 \\
        --scheduler random --gogc 0 --godebug heapcheck=2        # clean

The fix is one line: re-read the address after each allocation
(x = m.slot(0)); see docs/allocation-methods.md.
"""

from concalloc.memory import Type

DESCRIPTION = "keeps an address in a local across allocations (stale under --allocator bump)"
NODE = Type("stalenode", 16, [0])


def slots(cfg) -> int:
    return 1


def run(m, cfg) -> None:
    x = m.new(NODE)
    m.set_slot(0, x)
    while m.running():
        m.alloc(256)
        m.store(x, 0, 0)          # x may have moved: the rule says x = m.slot(0) first
