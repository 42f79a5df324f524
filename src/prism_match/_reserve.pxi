# The reservations of one registry, and the hot path of reserve and release.
# Included by _core.pyx after CoreRegistry (the book reads its C fields).
#
# ``Registry.reserve`` of a prepared slot is a placement loop's inner step,
# so its common case (no named backend, no group caps, a backend found)
# runs here without a Python frame: resolve the slot, take the registry's
# lock, choose and take in C, write down the Reservation, log the change.
# Every other case (a named backend, a slot that caps its group, nothing
# that fits, the first reservation of the columns) goes to the registry's
# general path, which does the same steps in Python and builds the errors.


cdef object _ONE = 1.0               # the namespaces one placement takes


cdef tuple _taken(PreparedSlot prepared):
    # (slot_name, write_rps, read_rps, storage, group, connections) as a
    # Reservation records them: made once per prepared slot, so reserving it
    # again makes no float and frees none.
    requirement = prepared.requirement
    group = requirement.group
    return (requirement.slot_name, prepared.s.min_w, prepared.s.min_r, prepared.s.min_storage,
            requirement.slot_name if group is None else group, prepared.s.min_conn)


@cython.final
cdef class ReservationBook:
    """The reservations held in one registry: ``held`` (id -> Reservation,
    oldest first), ``ids_of`` (backend_id -> the id of its one reservation,
    or the set of their ids when it holds more), ``next_id``. ``reserve`` and ``release`` are what Registry.reserve and
    Registry.release run (see the top of _reserve.pxi)."""
    cdef CoreRegistry core
    cdef readonly dict held
    cdef readonly dict ids_of
    cdef public Py_ssize_t next_id
    cdef object lock                  # the registry's lock (a fastrlock.FastRLock), taken in C
    cdef object _make                 # registry.Reservation
    cdef object _general              # Registry._reserve_general(slot, backend_id)
    cdef bint _ready                  # the columns hold reserved amounts apart (hold_reservations)

    def __init__(self, lock, make, general):
        self.held = {}
        self.ids_of = {}
        self.next_id = 1
        self.lock = lock
        self._make = make
        self._general = general

    def attach(self, CoreRegistry core):
        """Follow ``core`` (at load, and after compact)."""
        self.core = core
        self._ready = False

    def reserve(self, slot, backend_id=None):
        cdef CoreRegistry core = self.core
        cdef PreparedSlot prepared
        cdef score_t score
        cdef index_t hr, hi, size
        cdef Placed pl                # nothing placed yet: the kernel checks what is left (one step of assign)
        cdef object rid, reservation, bid
        cdef tuple taken
        if backend_id is not None:
            return self._general(slot, backend_id)
        if not self._ready:
            if not core.columns.reservable:
                return self._general(slot, None)
            self._ready = True
        prepared = core.resolve(slot)
        if prepared.s.max_per_backend < INFINITY or prepared.s.max_per_region < INFINITY \
                or prepared.s.max_skew < INFINITY:
            return self._general(prepared, None)
        memset(&pl, 0, sizeof(Placed))
        core._log_ready()
        lock_fastrlock(self.lock, -1, True)
        try:
            size = core._best(&prepared.s, &core.policy.p, &pl, 1, &score, &hr, &hi)
            if not size:
                reservation = None
            else:
                core._take(&prepared.s, hi)
                bid = core._ids[hi]
                taken = prepared._taken
                if taken is None:
                    taken = prepared._taken = _taken(prepared)
                rid = self.next_id
                self.next_id += 1
                reservation = self._make(rid, taken[0], bid, score, taken[1], taken[2], taken[3], _ONE,
                                         taken[4], taken[5])
                self.held[rid] = reservation
                self._note(bid, rid)
                core._logged("reserve", bid, reservation)
        finally:
            unlock_fastrlock(self.lock)
        if reservation is None:
            return self._general(prepared, None)  # nothing fits: the general path diagnoses it
        return reservation

    def release(self, reservation):
        cdef CoreRegistry core = self.core
        cdef object rid, held, ids, bid
        cdef dict index
        cdef bint last
        rid = reservation.id if isinstance(reservation, self._make) else reservation
        core._log_ready()
        lock_fastrlock(self.lock, -1, True)
        try:
            held = self.held.pop(rid, None)
            if held is None:
                return False
            bid = held.backend_id
            ids = self.ids_of[bid]
            if type(ids) is set:
                (<set>ids).discard(rid)
                last = not ids
            else:
                last = True
            if last:
                del self.ids_of[bid]
            index = core._the_index()
            core._give_back(index[bid], held.write_rps, held.read_rps, held.storage, held.namespaces, last,
                            held.connections)
            core._logged("release", bid, held.id)
        finally:
            unlock_fastrlock(self.lock)
        return True

    def hold(self, reservation):
        """Write down a reservation taken elsewhere (the general path, a
        replayed change, a loaded snapshot); ``next_id`` moves past its id."""
        self.held[reservation.id] = reservation
        self._note(reservation.backend_id, reservation.id)
        if reservation.id >= self.next_id:
            self.next_id = reservation.id + 1

    cdef inline int _note(self, object bid, object rid) except -1:
        # ``rid`` is one of ``bid``'s reservations (most backends hold one:
        # an int, no set made).
        cdef object ids = self.ids_of.get(bid)
        if ids is None:
            self.ids_of[bid] = rid
        elif type(ids) is set:
            (<set>ids).add(rid)
        else:
            self.ids_of[bid] = {ids, rid}
        return 0

    def forget_backend(self, backend_id):
        """Drop the reservations of a removed backend."""
        ids = self.ids_of.pop(backend_id, ())
        for rid in (ids if type(ids) is set or ids == () else (ids,)):
            del self.held[rid]

    def copy_from(self, ReservationBook other, removed):
        """The reservations of ``other`` but those of backends in ``removed``
        (a what-if view)."""
        self.held = {rid: r for rid, r in other.held.items() if r.backend_id not in removed}
        self.ids_of = {b: set(ids) if type(ids) is set else ids for b, ids in other.ids_of.items()
                       if b not in removed}
        self.next_id = other.next_id
