# Registry.add and Registry.remove without a Python frame. Included by
# _core.pyx after _living.pxi and _reserve.pxi (it calls LayoutCore and
# ReservationBook in C).
#
# A placement service adds and removes backends between matches, so each
# call is a few microseconds, of which the Python frame of ``Registry.add``
# or ``Registry.remove`` (its lock calls, attribute loads and the counters
# it keeps) was a fifth: some 0.45 us of a 2.3 us remove at 100,000
# backends. Here the same steps run in C, and the counters are C fields
# (the registry reads them here: ``registry._edits.structure``, ...).
# ``Registry`` binds these methods on each instance, as it binds
# ``update``, ``reserve`` and ``release``; its own methods document them.


@cython.final
cdef class RegistryEdits:
    """``Registry.add`` and ``Registry.remove``, compiled (see the top of
    _edits.pxi), and the counters every structural change keeps:
    ``records_current`` (the registry's records still match its
    registrations one to one), ``structure`` (grows with add, remove,
    replace and compact: what-if views taken before are stale) and
    ``batches`` (match_many runs holding the lock: their progress callback
    may not change the registry)."""
    cdef object registry              # the Registry: its methods for the rare cases (errors, new names)
    cdef object lock                  # its lock (a fastrlock.FastRLock), taken in C
    cdef ReservationBook book         # its reservations
    cdef dict health_notes            # its health notes (backend id -> note)
    cdef LayoutCore layout            # its layout (``attach``: at load and after compact)
    cdef public Py_ssize_t structure, batches
    cdef public bint records_current

    def __init__(self, registry, lock, ReservationBook book, dict health_notes):
        self.registry = registry
        self.lock = lock
        self.book = book
        self.health_notes = health_notes

    def attach(self, LayoutCore layout):
        """Follow ``layout`` (at load, and after compact)."""
        self.layout = layout

    def add(self, registration, *, strict=True, allow_inline_secrets=False):
        # Prepared registrations (a PreparedRegistration, or a list of
        # nothing else) go in as they are; anything else is validated (the
        # registry's method: a benchmark replaces it on the instance).
        cdef bint prepared = type(registration) is PreparedRegistration
        if prepared:
            regs = [registration]
        elif type(registration) is list and _all_prepared(<list>registration):
            regs, prepared = registration, True
        else:
            regs = self.registry._validated(registration, strict, allow_inline_secrets)
        lock_fastrlock(self.lock, -1, True)
        try:
            if self.batches:
                raise self.registry._during_batch("add")
            new_tokens = self.layout.add(regs, True, allow_inline_secrets, prepared)  # all or nothing; logged there
            if new_tokens is None:
                raise self.registry._already_registered(regs)
            self.records_current = False
            self.structure += 1
            if new_tokens:  # capability names new to the registry: checked once, when they arrive
                self.registry._check_new_names(new_tokens)
        finally:
            unlock_fastrlock(self.lock)

    def remove(self, backend_id):
        lock_fastrlock(self.lock, -1, True)
        try:
            if self.batches:
                raise self.registry._during_batch("remove")
            # A RegistryError naming it when unknown; logged there.
            self.layout._remove(backend_id, True)
            if self.health_notes:
                self.health_notes.pop(backend_id, None)
            if self.book.ids_of:
                self.book.forget_backend(backend_id)
            self.records_current = False
            self.structure += 1
        finally:
            unlock_fastrlock(self.lock)


cdef bint _all_prepared(list items):
    # A list of PreparedRegistrations only (and not empty): added as they are.
    if not items:
        return False
    for item in items:
        if type(item) is not PreparedRegistration:
            return False
    return True
