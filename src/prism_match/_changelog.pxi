# The registry's bounded change log (Registry.changes). Included by
# _core.pyx before CoreRegistry, which logs every change into it.


@cython.final
cdef class ChangeLog:
    """The bounded change log: the last ``capacity`` changes as (version,
    kind, backend_id, payload), oldest first when iterated. A ring of
    fixed slots written in place, so logging a change makes no tuple and
    frees none (a reserve or an update logs one on the hot path), and its
    version is a C integer (no int object made, none freed when the ring
    comes round)."""
    cdef Py_ssize_t* _versions
    cdef list _kinds, _ids, _payloads
    cdef readonly Py_ssize_t capacity
    cdef Py_ssize_t _next, _count       # the slot written next; slots in use

    def __cinit__(self, Py_ssize_t capacity):
        # Here, not in __init__: called once, so the array cannot leak.
        if capacity < 1:
            raise ValueError("a change log holds at least one change")
        self.capacity = capacity
        self._versions = <Py_ssize_t*>PyMem_Malloc(capacity * sizeof(Py_ssize_t))
        if self._versions == NULL:
            raise MemoryError()
        self._kinds = [None] * capacity
        self._ids = [None] * capacity
        self._payloads = [None] * capacity
        self._next = 0
        self._count = 0

    cdef inline int push(self, Py_ssize_t version, object kind, object backend_id, object payload) except -1:
        cdef Py_ssize_t at = self._next
        self._versions[at] = version
        self._kinds[at] = kind
        self._ids[at] = backend_id
        self._payloads[at] = payload
        self._next = at + 1 if at + 1 < self.capacity else 0
        if self._count < self.capacity:
            self._count += 1
        return 0

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
            entries.append((self._versions[at], self._kinds[at], self._ids[at], self._payloads[at]))
            at = at + 1 if at + 1 < self.capacity else 0
        return iter(entries)

    @property
    def first_version(self):
        """The version of the oldest change kept (None: empty)."""
        return self._versions[self._oldest()] if self._count else None
