# The registrations a registry keeps, as records, without a Python object
# each. Included by _core.pyx before _living.pxi (LayoutCore keeps one).
#
# A registration is kept to give it back (``registry[id]``, a snapshot, the
# change log), never to match: the columns hold what matching reads. Kept as
# a Registration it is some 25 Python objects, and a remove that let go of
# them, last touched long ago in a large registry, took 3.3-4.1 us in a
# churn at 100,000 backends (over the 2 us a remove is meant to take). Kept
# as one bytes object, a remove still frees a block of some 600 bytes, which
# the C allocator merges with its neighbours, far from the cache too
# (1.5-1.6 us). Here a record (the registration encoded: msgpack, the form a
# snapshot stores) is copied into a slot of a slab of its size class, and a
# remove gives the slot back to its class's free list: it touches the
# position's reference and the top of that list, and frees nothing (1.1-1.3
# us in the same churn, what a registry loaded from a snapshot takes).
#
# A PreparedRegistration (at the end) carries a validated registration and
# its record from ``Registry.prepare_registration`` to ``Registry.add``.


cdef enum:
    RECORD_GRAIN = 64            # the size classes: 64, 128, ... bytes
    RECORD_CLASSES = 64          # so records of up to 4,096 bytes have a slot (larger: the caller keeps them)
    RECORD_CHUNK = 65536         # bytes per slab chunk (at least one slot)


ctypedef struct record_ref:
    int32_t cls                  # the size class; -1: no record here
    int32_t length               # the record's length in bytes
    int64_t slot                 # its slot in the class


@cython.final
cdef class RecordStore:
    """Records by position, in size-classed slabs (see the top of
    _records.pxi). ``put(i, record)`` keeps a copy of the bytes at position
    ``i`` (False, nothing kept, when longer than ``max_length``), ``get(i)``
    gives a copy back (None: none kept), ``drop(i)`` lets it go, in constant
    time: its slot is reused by a later record of its class. Memory is a
    class's most slots in use at once (``compact`` on the registry makes a
    new store)."""
    cdef record_ref* refs
    cdef Py_ssize_t nrefs                      # positions the refs array covers
    cdef char** chunks[RECORD_CLASSES]         # per class: its chunks
    cdef Py_ssize_t nchunks[RECORD_CLASSES]
    cdef int64_t* free_slots[RECORD_CLASSES]   # per class: a stack of free slots
    cdef Py_ssize_t nfree[RECORD_CLASSES]
    cdef Py_ssize_t free_room[RECORD_CLASSES]
    cdef int64_t made[RECORD_CLASSES]          # slots handed out so far (the free ones included)
    cdef readonly Py_ssize_t count             # records kept

    def __cinit__(self):
        cdef Py_ssize_t c
        self.refs = NULL
        self.nrefs = 0
        self.count = 0
        for c in range(RECORD_CLASSES):
            self.chunks[c] = NULL
            self.nchunks[c] = 0
            self.free_slots[c] = NULL
            self.nfree[c] = 0
            self.free_room[c] = 0
            self.made[c] = 0

    def __dealloc__(self):
        cdef Py_ssize_t c, k
        for c in range(RECORD_CLASSES):
            for k in range(self.nchunks[c]):
                PyMem_Free(self.chunks[c][k])
            PyMem_Free(self.chunks[c])
            PyMem_Free(self.free_slots[c])
        PyMem_Free(self.refs)

    @property
    def max_length(self):
        return RECORD_GRAIN * RECORD_CLASSES

    @property
    def nbytes(self):
        """Bytes of slab allocated (chunks), refs included."""
        cdef Py_ssize_t c, total = self.nrefs * sizeof(record_ref)
        for c in range(RECORD_CLASSES):
            total += self.nchunks[c] * _chunk_slots(c) * _stride(c)
        return total

    cdef int _cover(self, Py_ssize_t n) except -1:
        # refs for positions [0, n): grown by doubling, new ones empty.
        cdef Py_ssize_t room = self.nrefs, j
        if n <= room:
            return 0
        room = max(n, 2 * room, 64)
        cdef record_ref* grown = <record_ref*>PyMem_Realloc(self.refs, room * sizeof(record_ref))
        if grown == NULL:
            raise MemoryError()
        for j in range(self.nrefs, room):
            grown[j].cls = -1
            grown[j].length = 0
            grown[j].slot = 0
        self.refs, self.nrefs = grown, room
        return 0

    cdef inline char* _at(self, int32_t c, int64_t slot) noexcept:
        cdef Py_ssize_t per = _chunk_slots(c)
        return self.chunks[c][slot // per] + (slot % per) * _stride(c)

    cdef int64_t _take(self, int32_t c) except -1:
        # A free slot of class ``c``: the last one given back, else a new one.
        cdef Py_ssize_t per, k
        cdef char** grown
        if self.nfree[c] > 0:
            self.nfree[c] -= 1
            return self.free_slots[c][self.nfree[c]]
        cdef int64_t slot = self.made[c]
        per = _chunk_slots(c)
        k = slot // per
        if k == self.nchunks[c]:
            grown = <char**>PyMem_Realloc(self.chunks[c], (k + 1) * sizeof(char*))
            if grown == NULL:
                raise MemoryError()
            self.chunks[c] = grown
            grown[k] = <char*>PyMem_Malloc(per * _stride(c))
            if grown[k] == NULL:
                raise MemoryError()
            self.nchunks[c] = k + 1
        self.made[c] = slot + 1
        return slot

    cdef int _give_back(self, int32_t c, int64_t slot) except -1:
        cdef Py_ssize_t room
        cdef int64_t* grown
        if self.nfree[c] == self.free_room[c]:
            room = max(2 * self.free_room[c], 64)
            grown = <int64_t*>PyMem_Realloc(self.free_slots[c], room * sizeof(int64_t))
            if grown == NULL:
                raise MemoryError()
            self.free_slots[c], self.free_room[c] = grown, room
        self.free_slots[c][self.nfree[c]] = slot
        self.nfree[c] += 1
        return 0

    cdef bint _put(self, Py_ssize_t i, const char* data, Py_ssize_t n) except -1:
        # ``put`` in C. Room is made before anything changes, so a
        # MemoryError leaves the position as it was.
        if n <= 0 or n > RECORD_GRAIN * RECORD_CLASSES:
            return False
        self._cover(i + 1)
        cdef int32_t c = <int32_t>((n - 1) // RECORD_GRAIN)
        cdef int64_t slot = self._take(c)
        memcpy(self._at(c, slot), data, n)
        self._drop(i)
        self.refs[i].cls = c
        self.refs[i].length = <int32_t>n
        self.refs[i].slot = slot
        self.count += 1
        return True

    cdef int _drop(self, Py_ssize_t i) except -1:
        if i >= self.nrefs or self.refs[i].cls < 0:
            return 0
        self._give_back(self.refs[i].cls, self.refs[i].slot)
        self.refs[i].cls = -1
        self.count -= 1
        return 0

    cdef inline void _prefetch(self, Py_ssize_t i) noexcept:
        # The reference a drop reads and writes.
        if i < self.nrefs:
            pm_prefetch_w(&self.refs[i])

    def put(self, Py_ssize_t i, const unsigned char[::1] record):
        """Keep a copy of ``record`` (bytes-like) at position ``i`` (what was
        kept there is let go). False, with nothing changed, when it is
        empty or longer than ``max_length``."""
        if i < 0:
            raise IndexError(i)
        return self._put(i, <const char*>&record[0] if record.shape[0] else NULL, record.shape[0])

    def drop(self, Py_ssize_t i):
        """Let go of position ``i``'s record (none kept: nothing happens)."""
        if i < 0:
            raise IndexError(i)
        self._drop(i)

    def get(self, Py_ssize_t i):
        """A copy of position ``i``'s record (bytes), or None."""
        if i < 0 or i >= self.nrefs or self.refs[i].cls < 0:
            return None
        cdef record_ref ref = self.refs[i]
        return PyBytes_FromStringAndSize(self._at(ref.cls, ref.slot), ref.length)

    @property
    def slots_made(self):
        """{slot size: slots made} for each size class in use: a slot is
        made only when none of its class is free, so this is the most
        records of the class kept at once."""
        return {_stride(c): self.made[c] for c in range(RECORD_CLASSES) if self.made[c]}

    def __contains__(self, Py_ssize_t i):
        return 0 <= i < self.nrefs and self.refs[i].cls >= 0


cdef inline Py_ssize_t _stride(Py_ssize_t c) noexcept nogil:
    return (c + 1) * RECORD_GRAIN


cdef inline Py_ssize_t _chunk_slots(Py_ssize_t c) noexcept nogil:
    cdef Py_ssize_t per = RECORD_CHUNK // _stride(c)
    return per if per > 0 else 1


@cython.final
cdef class PreparedRegistration:
    """A registration validated as the loader validates, with its record
    (``Registry.prepare_registration``): ``Registry.add`` takes it as it is,
    neither checking nor encoding it again, as ``match`` takes a prepared
    slot. A service can so validate and encode what arrives off its
    placement loop (or in another thread: neither takes the registry's
    lock), and add in a few microseconds. Its registration is not to be
    changed afterwards (its lists are Python lists)."""
    cdef readonly object registration   # the validated Registration
    cdef readonly object record         # its record (bytes); None when it holds inline secrets (allowed)

    def __init__(self, *args, **kwargs):
        raise TypeError("A PreparedRegistration is made by Registry.prepare_registration")

    def __repr__(self):
        return f"<PreparedRegistration {self.registration.backend_id!r}>"

    def __reduce__(self):
        raise TypeError("A PreparedRegistration is not pickled: prepare the registration where it is added")


def prepared_registration(registration, record):
    """A PreparedRegistration of a validated ``registration`` and its
    ``record`` (bytes, or None): for ``Registry.prepare_registration``
    only, which validates first."""
    cdef PreparedRegistration made = PreparedRegistration.__new__(PreparedRegistration)
    made.registration = registration
    made.record = record
    return made
