"""The heap bitmap (mbitmap.go, Go 1.19 layout): which heap words hold pointers.

Every heap word has a 2-bit entry in the bitmap of its 64 MiB arena
(HeapArena.bitmap, 2 MiB: HEAP_ARENA_BITMAP_BYTES).  Byte k of an arena's
bitmap describes its words 4k..4k+3: the low nibble holds their pointer
bits, the high nibble their scan bits (bit j and bit 4+j for word 4k+j).

    pointer bit   the word holds a pointer
    scan bit      this word or a later word of the object may hold one; it
                  is set for every word before the object's last pointer
                  word (inclusive) and clear from there on, so a scanner
                  stops at the first word whose scan bit is 0

For an array of n values of a type with size words and ptrdata bytes, the
words below (n-1)*size + ptrdata/8 have their scan bit set and the type's
pointer bits; every other word of the object is 00.  Objects of 2 and 3
words share a bitmap byte with their neighbours.

Who writes and reads it:

    initSpan(h, s)                   at span allocation (mheap.allocSpan):
                                     point the span at its arenas' bitmaps
                                     and clear its words (8-byte scan slots:
                                     all pointer/scan, as Go does, since a
                                     one-word object with pointers is one)
    heapBitsSetType(s, x, size, typ) at each scan allocation: write every
                                     word of the slot (elemsize; a large
                                     object up to its last pointer word, the
                                     rest initSpan cleared), so a reused slot
                                     gets the new object's bits and no stale
                                     ones (an 8-byte slot's are rewritten
                                     with the value initSpan gave them)
    pointer_slots(s, x)              the marker (scanobject) and the pointer
                                     oracle: addresses of the pointer words,
                                     in order, stopping at the first dead word
                                     (pointer_offsets: the same as offsets
                                     from x, what scanobject reads)
    isPointer(s, addr)               one word's pointer bit

Bits of noscan spans are not maintained (Go: "code must ensure that an
object is scannable before consulting its bitmap"): readers test the span
class's noscan bit first.  Freed slots keep stale bits until reused.

The write is one or two byte stores, or a slice store, never a loop over
words: each Type caches, per (object size, phase of the object's first word
within its bitmap byte), a write plan (Type.heapBits): the bitmap bytes of a
whole slot and the masks of the neighbours' bits sharing its first and last
byte.  A large object's bytes are the type's pattern over lcm(words, 4)
words, repeated.  A span that crosses an arena boundary (possible: the heap
is contiguous) takes a slow path that splits the store.

Debug type record (heapcheck=2 only): verify_heap can check each object's
bits against its type only if it knows the type.  With MHeap.recordTypes on
(Heap sets it at heapcheck >= 2, before any allocation), initSpan gives each
scan span `typeRecord`, an array('Q') with one entry per slot, and every
mcache's `heapBitsSetType` is bound to heapBitsSetTypeRecorded, which also
stores typ.id << 40 | size there.  With it off, the allocation paths call
the plain heapBitsSetType through the same mcache field, so they pay
nothing for the record, and verify_heap checks the bits' structure only.

Protection: a slot's bits are written only by the allocation of that slot,
which the span's owner makes (the P caching it, or the holder of its
mcentral's lock), one at a time, so bitmap bytes shared by two objects of
a span are never written concurrently; a write never changes a neighbour's
bits, even transiently (the shared byte is merged and stored once), so a
concurrent reader of the neighbour sees them intact.  initSpan writes
before the span's first object exists.  Readers of an object's bits read
them after the object was published.
"""

from __future__ import annotations

import math
from array import array

from .memory import type_by_id
from .sysmem import ARENA_BASE, HEAP_ARENA_BYTES, HEAP_ARENA_SHIFT, PAGE_SHIFT

HEAP_ARENA_WORDS = HEAP_ARENA_BYTES >> 3
HEAP_ARENA_BITMAP_BYTES = HEAP_ARENA_WORDS >> 2      # 2 MiB per 64 MiB arena
_WORD_MASK = HEAP_ARENA_WORDS - 1
BIT_POINTER = 0x01                                   # of word j of a byte: << j
BIT_SCAN = 0x10
_CHUNK_WORDS = 1 << 12                               # pointer_slots reads at most this many words at once
_LOW_NIBBLES = int.from_bytes(b"\x0f" * ((_CHUNK_WORDS >> 2) + 2), "little")
_TYPE_SHIFT = 40                                     # typeRecord entry: typ.id << 40 | size


# ---------------------------------------------------------------- patterns

def word_bits(typ, size: int, i: int) -> int:
    """The 2-bit entry (BIT_POINTER | BIT_SCAN, unshifted) of word i of an
    object of `size` bytes holding size // typ.size values of typ."""
    ndata = typ.size >> 3
    totalptr = size // typ.size * ndata - ndata + (typ.ptrdata >> 3)
    if i >= totalptr:
        return 0
    return BIT_SCAN | (typ.ptrmask >> (i % ndata) & 1)


def _small_bits(typ, size: int, nwords: int, phase: int) -> tuple:
    """(bitmap bytes, keep mask of the first byte, keep mask of the last
    byte) of an nwords-word slot holding `size` bytes of typ whose first word
    is word `phase` of its first bitmap byte.  A keep mask covers the bits of
    neighbours sharing that byte (0: the object owns the byte); for a
    one-byte pattern the first mask covers both sides and the last is 0."""
    ndata = typ.size >> 3
    totalptr = size // typ.size * ndata - ndata + (typ.ptrdata >> 3)
    mask = typ.ptrmask
    end = phase + nwords
    out = bytearray((end + 3) >> 2)
    for i in range(totalptr):
        r = phase + i
        out[r >> 2] |= (BIT_SCAN | (mask >> (i % ndata) & 1)) << (r & 3)
    k0 = ((1 << phase) - 1) * 0x11
    k1 = (0xF & -(1 << (end & 3))) * 0x11 if end & 3 else 0
    if len(out) == 1:
        k0, k1 = k0 | k1, 0
    return bytes(out), k0, k1


def array_bits(typ, size: int) -> bytes:
    """Bitmap bytes of an object at phase 0 up to its last scan word (the
    rest of a large object's words stay as initSpan cleared them): the
    type's element pattern over lcm(words, 4) words, repeated."""
    ndata = typ.size >> 3
    totalptr = size // typ.size * ndata - ndata + (typ.ptrdata >> 3)
    period = typ.heapBits.get(-1)
    if period is None:
        period = _small_bits_all_scan(typ, math.lcm(ndata, 4))
        typ.heapBits[-1] = period
    pw = len(period) * 4
    body = bytearray((period * -(-totalptr // pw))[:(totalptr + 3) >> 2])
    if totalptr & 3:
        keep = (1 << (totalptr & 3)) - 1
        body[-1] &= keep * 0x11
    return bytes(body)


def _small_bits_all_scan(typ, nwords: int) -> bytes:
    """nwords words (a multiple of 4 and of the type's words) of the type's
    pattern with every scan bit set: the repeating unit of an array."""
    ndata = typ.size >> 3
    mask = typ.ptrmask
    out = bytearray(nwords >> 2)
    for r in range(nwords):
        out[r >> 2] |= (BIT_SCAN | (mask >> (r % ndata) & 1)) << (r & 3)
    return bytes(out)


def object_bits(typ, size: int, nwords: int, phase: int) -> tuple:
    """The cached write plan (see _write_plan) of a small slot's bits (see
    _small_bits)."""
    key = size << 2 | phase
    bits = typ.heapBits.get(key)
    if bits is None:
        bits = typ.heapBits[key] = _write_plan(*_small_bits(typ, size, nwords, phase))
    return bits


# ---------------------------------------------------------------- spans

def initSpan(h, s) -> None:
    """heapBits.initSpan: give s its arenas' bitmaps and initialise its
    words' bits: 00 for a scan span, 11 for an 8-byte scan span (every slot
    is one pointer); a noscan span's bits are left alone (not maintained)."""
    first = (s.startAddr - ARENA_BASE) >> HEAP_ARENA_SHIFT
    last = (s.startAddr + (s.npages << PAGE_SHIFT) - 1 - ARENA_BASE) >> HEAP_ARENA_SHIFT
    s.heapBits = h.arenas[first].bitmap
    s.heapBitsMore = tuple(h.arenas[i].bitmap for i in range(first + 1, last + 1))
    if s.spanclass & 1:
        return
    nbytes = s.npages << (PAGE_SHIFT - 5)
    fill = b"\xff" * nbytes if s.elemsize == 8 else bytes(nbytes)
    _store(s, _span_byte(s, s.startAddr), fill)
    if h.recordTypes:
        s.typeRecord = array("Q", bytes(8 * s.nelems))


def _store(s, g: int, data) -> None:
    """Store data at byte g of the span's bitmaps taken end to end (byte 0:
    the first byte of the bitmap of the arena holding startAddr)."""
    bms = (s.heapBits,) + s.heapBitsMore
    k, b = divmod(g, HEAP_ARENA_BITMAP_BYTES)
    n = 0
    while n < len(data):
        m = min(len(data) - n, HEAP_ARENA_BITMAP_BYTES - b)
        bms[k][b:b + m] = data[n:n + m]
        n += m
        k += 1
        b = 0


def _byte_at(s, g: int) -> int:
    k, b = divmod(g, HEAP_ARENA_BITMAP_BYTES)
    return (s.heapBits if k == 0 else s.heapBitsMore[k - 1])[b]


def _span_byte(s, x: int) -> int:
    """g (as in _store) of the bitmap byte of the heap word at x."""
    first = ((s.startAddr - ARENA_BASE) >> HEAP_ARENA_SHIFT << HEAP_ARENA_SHIFT) + ARENA_BASE
    return (x - first) >> 5


def _bitmap_for(s, addr: int):
    """(bitmap, word index in it) of the heap word at addr, in span s."""
    k = ((addr - ARENA_BASE) >> HEAP_ARENA_SHIFT) - ((s.startAddr - ARENA_BASE) >> HEAP_ARENA_SHIFT)
    return (s.heapBits if k == 0 else s.heapBitsMore[k - 1]), (addr >> 3) & _WORD_MASK


# ---------------------------------------------------------------- writing

def heapBitsSetType(s, x: int, size: int, typ) -> None:
    """Record that the new object at x (size bytes of span s: size // typ.size
    values of typ, which has pointers) holds typ's pointers.  Every word of a
    small object's slot is written; a large object's words past its last
    pointer word are left as initSpan cleared them."""
    w = (x >> 3) & _WORD_MASK
    try:
        kind, p0, k0, pl, k1, pat, mid = typ.heapBits[size << 2 | w & 3]   # small objects' plans only
    except KeyError:
        _heapBitsSetTypeSlow(s, x, size, typ)
        return
    if s.heapBitsMore:
        _heapBitsSetTypeSlow(s, x, size, typ)
        return
    bm = s.heapBits
    b0 = w >> 2
    # A byte store costs a fraction of a slice store: objects of up to 8
    # words (two bitmap bytes) take one or two, merged with the neighbours'
    # bits only where they share the byte.
    if kind == _TWO:
        bm[b0] = p0
        bm[b0 + 1] = pl
    elif kind == _TWO_MERGE_LAST:
        bm[b0] = p0
        bm[b0 + 1] = bm[b0 + 1] & k1 | pl
    elif kind == _TWO_MERGE_FIRST:
        bm[b0] = bm[b0] & k0 | p0
        bm[b0 + 1] = pl
    elif kind == _ONE:
        bm[b0] = bm[b0] & k0 | p0
    elif kind == _MANY:
        bm[b0:b0 + len(pat)] = pat
    else:
        nb = len(pat)
        bm[b0 + 1:b0 + nb - 1] = mid
        bm[b0] = bm[b0] & k0 | p0
        bm[b0 + nb - 1] = bm[b0 + nb - 1] & k1 | pl


def _heapBitsSetTypeSlow(s, x: int, size: int, typ) -> None:
    """heapBitsSetType the first time a small size and phase is seen, for a
    large object, and in a span that crosses an arena boundary."""
    w = (x >> 3) & _WORD_MASK
    if s.spanclass >> 1:
        bits = object_bits(typ, size, s.elemsize >> 3, w & 3)
    else:
        bits = _write_plan(array_bits(typ, size), 0, 0)
    _store(s, _span_byte(s, x), _merged(s, x, bits))   # across the arena boundary if need be


def _merged(s, x: int, bits: tuple) -> bytearray:
    """The plan's bytes with the neighbours' bits of the edge bytes merged in."""
    _kind, _p0, k0, _pl, k1, pat, _mid = bits
    g = _span_byte(s, x)
    data = bytearray(pat)
    if k0:
        data[0] |= _byte_at(s, g) & k0
    if k1:
        data[-1] |= _byte_at(s, g + len(data) - 1) & k1
    return data


_TWO, _TWO_MERGE_LAST, _TWO_MERGE_FIRST, _ONE, _MANY, _MANY_MERGE = range(6)


def _write_plan(pat: bytes, k0: int, k1: int) -> tuple:
    """How heapBitsSetType stores pat: (kind, first byte, its keep mask, last
    byte, its keep mask, all bytes, the bytes between first and last).  A
    keep mask covers the neighbours' bits sharing that byte (0: none)."""
    nb = len(pat)
    if nb == 1:
        kind = _ONE
    elif nb == 2:
        kind = (_TWO, _TWO_MERGE_LAST, _TWO_MERGE_FIRST, _MANY_MERGE)[bool(k1) + 2 * bool(k0)]
    else:
        kind = _MANY_MERGE if k0 or k1 else _MANY
    return kind, pat[0], k0, pat[-1], k1, pat, pat[1:-1]


def heapBitsSetTypeRecorded(s, x: int, size: int, typ) -> None:
    """heapBitsSetType, and the debug type record (heapcheck=2)."""
    heapBitsSetType(s, x, size, typ)
    rec = s.typeRecord
    if rec is not None:
        rec[(x - s.startAddr) // s.elemsize if s.spanclass >> 1 else 0] = typ.id << _TYPE_SHIFT | size


def recorded_type(s, x: int):
    """(Type, size) the debug record holds for the object at x, or None
    (noscan span, or no record: heapcheck < 2)."""
    rec = s.typeRecord
    if rec is None or s.spanclass & 1:
        return None
    e = rec[(x - s.startAddr) // s.elemsize if s.spanclass >> 1 else 0]
    if not e:
        return None
    return type_by_id(e >> _TYPE_SHIFT), e & ((1 << _TYPE_SHIFT) - 1)


def object_type(s, x: int):
    """The Type recorded for the object at x, or None (noscan, or no record)."""
    r = recorded_type(s, x)
    return None if r is None else r[0]


# ---------------------------------------------------------------- reading

def object_words(s, x: int) -> int:
    """Words of the object at x whose bits describe it: the slot of a small
    object, the exact size of a large one."""
    return (s.elemsize if s.spanclass >> 1 else s.limit - x) >> 3


def isPointer(s, addr: int) -> bool:
    """The pointer bit of the heap word at addr (a word of a scan span)."""
    bm, w = _bitmap_for(s, addr)
    return bool(bm[w >> 2] >> (w & 3) & BIT_POINTER)


def bitmap_bytes(s, x: int, n: int) -> tuple[bytes, int]:
    """(the bitmap bytes covering n words from x, the phase of x's word in
    the first byte), read across arena boundaries: for checkers."""
    bm, w = _bitmap_for(s, x)
    sh = w & 3
    b0 = w >> 2
    nb = (sh + n + 3) >> 2
    if b0 + nb <= HEAP_ARENA_BITMAP_BYTES:
        return bytes(bm[b0:b0 + nb]), sh
    out = bytearray(bm[b0:])
    k = ((x - ARENA_BASE) >> HEAP_ARENA_SHIFT) - ((s.startAddr - ARENA_BASE) >> HEAP_ARENA_SHIFT)
    for bm in s.heapBitsMore[k:]:
        out += bm[:nb - len(out)]
        if len(out) >= nb:
            break
    return bytes(out), sh


def entries(s, x: int, n: int) -> list[int]:
    """The 2-bit entries (BIT_POINTER | BIT_SCAN, unshifted) of n words from
    x, one per word: for checkers and tests, not for hot paths."""
    out = []
    for i in range(n):
        bm, w = _bitmap_for(s, x + 8 * i)
        out.append(bm[w >> 2] >> (w & 3) & 0x11)
    return out


def pointer_slots(s, x: int) -> list[int]:
    """Addresses of the pointer words of the object at x (in span s), in
    order, read from the heap bitmap: scanning stops at the first word whose
    scan bit is clear (after the last pointer word).  Empty for noscan.

    A small object's bitmap bytes are read as one int and its decoding (the
    pointer words' offsets) is memoised by that int, the object's phase and
    its length: the bits are read on every call, only their meaning is
    remembered."""
    if s.spanclass & 1:
        return []
    return [x + o for o in pointer_offsets(s, x)]


def pointer_offsets(s, x: int) -> tuple | list:
    """pointer_slots as byte offsets from x, for the marker's hot loop: a
    small object's offsets are the memoised tuple itself (no list built).
    Not for noscan spans (the caller tests the span class first)."""
    n = s.elemsize >> 3
    if s.spanclass >> 1 and n <= _MEMO_WORDS and not s.heapBitsMore:
        w = (x >> 3) & _WORD_MASK
        b0 = w >> 2
        key = int.from_bytes(s.heapBits[b0:b0 + ((w & 3) + n + 3 >> 2)], "little") << 16 | n << 2 | w & 3
        offs = _decoded.get(key)
        if offs is None:
            offs = _decode(key)
        return offs
    return [a - x for a in _pointer_slots_long(s, x, object_words(s, x))]


_MEMO_WORDS = 256                       # objects up to 2 KiB are decoded through _decoded
_MEMO_MAX = 1 << 16
_decoded: dict[int, tuple] = {}         # pointer_slots key -> byte offsets; dict stores are atomic,
                                        # equal keys decode equally, and a clear only costs re-decoding
# For scanobject, which computes the key itself for objects whose bits fit in
# two bitmap bytes: bitmap bytes (little-endian) << 16 | words << 2 | phase.
DECODED_OFFSETS = _decoded
WORD_MASK = _WORD_MASK


def _decode(key: int) -> tuple:
    sh, n, r = key & 3, key >> 2 & 0x3FFF, key >> 16
    out: list[int] = []
    _scan_chunk_int(r, sh, sh + n, -8 * sh, out)
    if len(_decoded) >= _MEMO_MAX:
        _decoded.clear()
    offs = _decoded[key] = tuple(out)
    return offs


def _scan_chunk(bm, b0: int, b1: int, sh: int, e: int, base: int, out: list) -> bool:
    """Append the pointer words among words sh..e-1 of bitmap bytes b0..b1-1
    (base: the address of the first byte's word 0); True if a dead word (scan
    bit 0) ended the scan."""
    return _scan_chunk_int(int.from_bytes(bm[b0:b1], "little"), sh, e, base, out)


def _scan_chunk_int(r: int, sh: int, e: int, base: int, out: list) -> bool:
    """_scan_chunk on the bitmap bytes as one int: bit 8k+j is word 4k+j's
    pointer bit, bit 8k+4+j its scan bit."""
    rng = ((1 << (((e >> 2) << 3) + (e & 3))) - (1 << sh)) & _LOW_NIBBLES
    dead = rng & ~(r >> 4)
    if dead:
        rng &= (dead & -dead) - 1
    v = r & rng
    append = out.append
    while v:
        low = v & -v
        p = low.bit_length() - 1
        append(base + ((p >> 3) << 5) + ((p & 7) << 3))
        v ^= low
    return bool(dead)


def _pointer_slots_long(s, x: int, n: int) -> list[int]:
    """pointer_slots in pieces of at most _CHUNK_WORDS words that never cross
    an arena, stopping at the first dead word."""
    out: list[int] = []
    a, end = x, x + 8 * n
    while a < end:
        arena_end = ((a - ARENA_BASE) >> HEAP_ARENA_SHIFT << HEAP_ARENA_SHIFT) + ARENA_BASE + HEAP_ARENA_BYTES
        stop = min(end, arena_end, a + 8 * _CHUNK_WORDS)
        bm, w = _bitmap_for(s, a)
        sh = w & 3
        e = sh + ((stop - a) >> 3)
        if _scan_chunk(bm, w >> 2, (w >> 2) + ((e + 3) >> 2), sh, e, a - 8 * sh, out):
            break
        a = stop
    return out
