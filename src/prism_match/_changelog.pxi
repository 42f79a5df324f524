# The registry's bounded change log (Registry.changes). Included by
# _core.pyx before CoreRegistry, which logs every change into it.


@cython.final
cdef class ChangeLog:
    """The bounded change log: the last ``capacity`` changes as (version,
    kind, backend_id, payload), oldest first when iterated. A ring of
    fixed slots written in place, so logging a change makes no tuple and
    frees none (a reserve or an update logs one on the hot path), and its
    version is a C integer (no int object made, none freed when the ring
    comes round).

    A change whose payload is a record (bytes: an add's or a replace's
    registration, ``push_record``) has it copied into a ring of bytes beside
    the slots, not kept as an object: the ring lets go of the oldest records
    as the slots do, in order, so logging an add frees nothing either
    (iterating gives each as bytes again; ``nbytes``: the ring's size)."""
    cdef Py_ssize_t* _versions
    cdef list _kinds, _ids, _payloads
    cdef readonly Py_ssize_t capacity
    cdef Py_ssize_t _next, _count       # the slot written next; slots in use
    cdef Py_ssize_t* _span_at           # per slot: where its record starts in the ring of bytes
    cdef Py_ssize_t* _span_len          # and its length (0: the slot's payload is an object)
    cdef char* _ring                    # the records of the slots, oldest first from the tail
    cdef Py_ssize_t _ring_room, _ring_head, _ring_used  # its size, where the next goes, bytes kept

    def __cinit__(self, Py_ssize_t capacity):
        # Here, not in __init__: called once, so the array cannot leak.
        if capacity < 1:
            raise ValueError("a change log holds at least one change")
        self.capacity = capacity
        self._versions = <Py_ssize_t*>PyMem_Malloc(capacity * sizeof(Py_ssize_t))
        self._span_at = <Py_ssize_t*>PyMem_Malloc(capacity * sizeof(Py_ssize_t))
        self._span_len = <Py_ssize_t*>PyMem_Malloc(capacity * sizeof(Py_ssize_t))
        if self._versions == NULL or self._span_at == NULL or self._span_len == NULL:
            raise MemoryError()
        memset(self._span_len, 0, capacity * sizeof(Py_ssize_t))
        self._ring = NULL
        self._ring_room = self._ring_head = self._ring_used = 0
        self._kinds = [None] * capacity
        self._ids = [None] * capacity
        self._payloads = [None] * capacity
        self._next = 0
        self._count = 0

    cdef inline int push(self, Py_ssize_t version, object kind, object backend_id, object payload) except -1:
        # A bytes payload (a record) goes into the ring of bytes.
        if type(payload) is bytes:
            return self.push_record(version, kind, backend_id, PyBytes_AS_STRING(payload), len(<bytes>payload))
        return self._put(version, kind, backend_id, payload)

    cdef inline int _put(self, Py_ssize_t version, object kind, object backend_id, object payload) except -1:
        cdef Py_ssize_t at = self._next
        if self._span_len[at]:
            self._ring_used -= self._span_len[at]  # the oldest record: the ring's tail moves past it
            self._span_len[at] = 0
        self._versions[at] = version
        self._kinds[at] = kind
        self._ids[at] = backend_id
        self._payloads[at] = payload
        self._next = at + 1 if at + 1 < self.capacity else 0
        if self._count < self.capacity:
            self._count += 1
        return 0

    cdef int push_record(self, Py_ssize_t version, object kind, object backend_id, const char* data,
                         Py_ssize_t n) except -1:
        # ``push`` of a change whose payload is a record (``n`` bytes at
        # ``data``), copied into the ring (grown when it has no room).
        cdef Py_ssize_t at = self._next, first
        if n <= 0:
            return self._put(version, kind, backend_id, b"")
        if self._span_len[at]:
            self._ring_used -= self._span_len[at]
            self._span_len[at] = 0
        if self._ring_used + n > self._ring_room:
            self._grow_ring(self._ring_used + n)
        first = min(n, self._ring_room - self._ring_head)
        memcpy(self._ring + self._ring_head, data, first)
        if first < n:
            memcpy(self._ring, data + first, n - first)
        self._put(version, kind, backend_id, None)  # finds the slot free of a record (above)
        self._span_at[at] = self._ring_head
        self._span_len[at] = n
        self._ring_head = (self._ring_head + n) % self._ring_room
        self._ring_used += n
        return 0

    cdef int _grow_ring(self, Py_ssize_t need) except -1:
        # A larger ring with the kept records at its start, in order (a
        # pause as long as the log's records, not the registry's).
        cdef Py_ssize_t room = max(need, 2 * self._ring_room, 65536), tail, j, at
        cdef char* grown = <char*>PyMem_Malloc(room)
        if grown == NULL:
            raise MemoryError()
        tail = self._ring_head - self._ring_used
        if tail < 0:
            tail += self._ring_room
        if self._ring_used:
            self._copy_out(tail, self._ring_used, grown)
        at = self._oldest()
        for j in range(self._count):
            if self._span_len[at]:
                self._span_at[at] -= tail
                if self._span_at[at] < 0:
                    self._span_at[at] += self._ring_room
            at = at + 1 if at + 1 < self.capacity else 0
        PyMem_Free(self._ring)
        self._ring, self._ring_room, self._ring_head = grown, room, self._ring_used
        return 0

    cdef void _copy_out(self, Py_ssize_t start, Py_ssize_t n, char* out) noexcept:
        # ``n`` bytes of the ring from ``start`` (wrapping round its end).
        cdef Py_ssize_t first = min(n, self._ring_room - start)
        memcpy(out, self._ring + start, first)
        if first < n:
            memcpy(out + first, self._ring, n - first)

    cdef object _payload(self, Py_ssize_t at):
        if not self._span_len[at]:
            return self._payloads[at]
        out = PyBytes_FromStringAndSize(NULL, self._span_len[at])
        self._copy_out(self._span_at[at], self._span_len[at], PyBytes_AS_STRING(out))
        return out

    cdef inline void ready(self) noexcept:
        # The next push lets go of the oldest change's id and payload
        # (once the ring is full): objects last touched thousands of changes
        # ago. Asked for at the start of a change, their misses overlap the
        # change's own (in turns at 100,000 backends, a churn remove took
        # 1.41-1.63 us against 1.72-1.82 without).
        if self._count == self.capacity:
            pm_prefetch_list_item(self._ids, self._next)
            pm_prefetch_list_item(self._payloads, self._next)

    def __dealloc__(self):
        PyMem_Free(self._versions)
        PyMem_Free(self._span_at)
        PyMem_Free(self._span_len)
        PyMem_Free(self._ring)

    def append(self, entry):
        """Log ``(version, kind, backend_id, payload)``."""
        version, kind, backend_id, payload = entry
        self.push(version, kind, backend_id, payload)

    def __len__(self):
        return self._count

    cdef inline Py_ssize_t _oldest(self) noexcept:
        # The slot of the oldest change kept (C's % keeps the sign: no % here).
        cdef Py_ssize_t at = self._next - self._count
        return at + self.capacity if at < 0 else at

    def __iter__(self):
        cdef Py_ssize_t j, at = self._oldest()
        entries = []
        for j in range(self._count):
            entries.append((self._versions[at], self._kinds[at], self._ids[at], self._payload(at)))
            at = at + 1 if at + 1 < self.capacity else 0
        return iter(entries)

    @property
    def nbytes(self):
        """The ring of bytes' size (it grows to hold the records kept)."""
        return self._ring_room

    @property
    def first_version(self):
        """The version of the oldest change kept (None: empty)."""
        return self._versions[self._oldest()] if self._count else None
