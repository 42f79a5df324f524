# Batches: many slots over one view of the registry; capacity-aware placement;
# the diagnosis pass. Included by _core.pyx.

from libc.stdlib cimport malloc, free


cdef class LiveSnapshot:
    """Copies of the live columns, taken under the GIL, and references to
    every other array the kernel reads: a batch that runs nogil reads these,
    so concurrent updates cannot tear its view and a concurrent add that
    grows the registry cannot free what it reads."""
    cdef Reg r
    cdef object _keep
    cdef object _pinned
    cdef ScanOrder scan            # the registry's scan order, its live rows copied, bounds exact (or None)
    cdef readonly object connections     # used connections (active + reserved) as copied

    def __init__(self, CoreRegistry core):
        c = core.columns
        n = c.n
        keep = (c.used_write_rps.copy(), c.used_read_rps.copy(), c.used_storage.copy(), c.used_namespaces.copy(),
                c.avail_score.copy(), c.health.copy())
        self._keep = keep
        self._pinned = dict(c.store)  # the arrays as they are now (an add replaces, never frees them)
        self.r = core.r
        self.r.cur_w = <const score_t*>_ptr(keep[0])
        self.r.cur_r = <const score_t*>_ptr(keep[1])
        self.r.storage_used = <const score_t*>_ptr(keep[2])
        self.r.ns_count = <const score_t*>_ptr(keep[3])
        self.r.avail_score = <const score_t*>_ptr(keep[4])
        self.r.health = <const code_t*>_ptr(keep[5])
        self.connections = c.used_connections.copy()
        self.r.cur_conn = <const score_t*>_ptr(self.connections)
        self.scan = core._scan.snapshot(&self.r) if core._scan is not None and core.use_scan_order else None

    cdef inline index_t best(self, const Slot* s, const Policy* p, const Placed* pl, index_t k,
                             score_t* hs, index_t* hr, index_t* hi) noexcept nogil:
        if self.scan is not None:
            return topk_ordered(&self.r, &self.scan.o, s, p, pl, k, hs, hr, hi)
        return topk_scores(&self.r, s, p, pl, k, hs, hr, hi)

    @property
    def arrays(self):
        """(used write_rps, read_rps, storage, namespaces, avail_score, health) as copied."""
        return self._keep

    def failure_bits(self, PreparedSlot slot, CorePolicy policy, placed=None, group=None, conn=None):
        """See ``CoreRegistry.failure_bits``; against this snapshot, with the
        capacity ``placed`` (w, r, storage, ns arrays) already consumed, the
        slot's ``group`` placements (per backend, per region bit) and the
        connections ``conn`` placed so far."""
        return _failure_bits(&self.r, slot, policy, placed, group, conn)


cdef tuple _failure_bits(const Reg* r, PreparedSlot slot, CorePolicy policy, object placed,
                         object group=None, object conn=None, bint live=False):
    # ``live``: ``r`` is the live registry's, which adds, removes and
    # replaces write from other threads (with the GIL): the pass keeps the
    # GIL, so none of them runs while it reads (released, it read positions
    # half written: tests/test_living.py, explain beside adds). A
    # snapshot's pass releases it: its callers hold the registry's lock,
    # which those changes take.
    cdef Placed pl
    cdef const Placed* ppl = NULL
    cdef score_t[::1] w, rr, st, ns, gb, gr, cn
    cdef rules_t[::1] out
    cdef index_t[::1] counts
    cdef index_t eligible, n
    tally = np.zeros(N_RULES, dtype=np.int64)
    out = np.zeros(max(r.n, 1), dtype=np.uint32)
    counts = tally
    memset(&pl, 0, sizeof(Placed))
    if placed is not None:
        w, rr, st, ns = placed
        pl.w = &w[0]; pl.r = &rr[0]; pl.storage = &st[0]; pl.ns = &ns[0]
        if conn is not None:
            cn = conn
            pl.conn = &cn[0]
        if group is not None:
            gb, gr = group
            _set_group(r, &slot.s, &policy.p, &pl, &gb[0], &gr[0])
        ppl = &pl
    elif group is not None:  # a pattern's binding: the group rules alone, nothing consumed
        pl.bind_only = True
        gb, gr = group
        _set_group(r, &slot.s, &policy.p, &pl, &gb[0], &gr[0])
        ppl = &pl
    while r.n > out.shape[0]:
        # Positions added by another thread while this made Python calls
        # (the allocations above can let it run): the pass writes one entry
        # per position, so the output is made again to fit.
        out = np.zeros(r.n, dtype=np.uint32)
    n = r.n  # (nothing between here and the pass lets another thread run)
    if live:
        eligible = failure_bits(r, &slot.s, &policy.p, ppl, &out[0], &counts[0])
    else:
        with nogil:
            eligible = failure_bits(r, &slot.s, &policy.p, ppl, &out[0], &counts[0])
    bits = np.asarray(out)[:n]
    return bits, tally, eligible


def topk_many(LiveSnapshot snap, list slots, CorePolicy policy, Py_ssize_t k, Py_ssize_t start,
              Py_ssize_t stop, index_t[:, ::1] out_idx, score_t[:, ::1] out_score, score_t[:, ::1] out_perf,
              score_t[:, ::1] out_region, index_t[::1] out_count, int threads):
    """Top-k for ``slots[start:stop]`` into rows ``start:stop`` of the outputs
    (shapes [m, k]); parallel over slots with OpenMP, GIL released. Each slot
    writes only its own rows, so the answer is the same for any thread count."""
    cdef Py_ssize_t m = stop - start, j
    cdef Slot* cs = <Slot*>malloc(max(m, 1) * sizeof(Slot))
    cdef index_t* ranks = <index_t*>malloc(max(m * k, 1) * sizeof(index_t))
    cdef index_t t, i, size
    cdef score_t perf, region, aw, ar
    if cs == NULL or ranks == NULL:
        free(cs); free(ranks)
        raise MemoryError()
    try:
        for j in range(m):
            cs[j] = (<PreparedSlot>slots[start + j]).s
        with nogil:
            for j in prange(m, num_threads=max(threads, 1), schedule="dynamic", chunksize=8):
                # Assigned here so Cython makes them thread-private: they are
                # otherwise only written through pointers, and would be shared.
                perf = 0.0
                region = 0.0
                aw = 0.0
                ar = 0.0
                size = snap.best(&cs[j], &policy.p, NULL, k, &out_score[start + j, 0], &ranks[j * k],
                                 &out_idx[start + j, 0])
                out_count[start + j] = size
                for t in range(size):
                    i = out_idx[start + j, t]
                    _components(&snap.r, &cs[j], &policy.p, NULL, i, &perf, &region, &aw, &ar)
                    out_perf[start + j, t] = perf
                    out_region[start + j, t] = region
    finally:
        free(cs)
        free(ranks)


def assign_run(LiveSnapshot snap, list slots, CorePolicy policy, Py_ssize_t start,
               score_t[::1] placed_w, score_t[::1] placed_r, score_t[::1] placed_storage,
               score_t[::1] placed_ns, index_t[::1] chosen, score_t[::1] chosen_score,
               score_t[::1] chosen_perf, score_t[::1] chosen_region, score_t[::1] placed_conn=None,
               index_t[::1] group_of=None, score_t[:, ::1] group_backend=None,
               score_t[:, ::1] group_region=None, bint bind_only=False):
    """Place ``slots[start:]`` in order, each on its best backend given what
    earlier placements consumed (SPEC §6 assign). Stops at the first slot that
    cannot be placed and returns its position (the caller diagnoses it against
    the placed state of that moment, then resumes after it); returns
    ``len(slots)`` when all are done.

    ``placed_conn``: connections consumed (the slots' min_connections).
    ``group_of[j]``: the row of slot j's group in ``group_backend`` [G, n] and
    ``group_region`` [G, wr * 64] (placements per backend and per region bit,
    counted here), or -1 for a slot no group rule concerns. ``bind_only``:
    a pattern's binding, which consumes no capacity (group rules only)."""
    cdef Py_ssize_t m = len(slots), j
    cdef Placed pl
    cdef PreparedSlot cs
    cdef score_t hs
    cdef index_t hr, hi, size, g
    cdef score_t perf, region, aw, ar
    memset(&pl, 0, sizeof(Placed))
    if bind_only:
        pl.bind_only = True
    else:
        pl.w = &placed_w[0]
        pl.r = &placed_r[0]
        pl.storage = &placed_storage[0]
        pl.ns = &placed_ns[0]
        if placed_conn is not None:
            pl.conn = &placed_conn[0]
    for j in range(start, m):
        cs = <PreparedSlot>slots[j]
        g = group_of[j] if group_of is not None else -1
        if g >= 0:
            _set_group(&snap.r, &cs.s, &policy.p, &pl, &group_backend[g, 0], &group_region[g, 0])
        else:
            pl.grp_backend = NULL
            pl.grp_region = NULL
        with nogil:
            size = snap.best(&cs.s, &policy.p, &pl, 1, &hs, &hr, &hi)
            if size:
                _components(&snap.r, &cs.s, &policy.p, &pl, hi, &perf, &region, &aw, &ar)
                chosen[j] = hi
                chosen_score[j] = hs
                chosen_perf[j] = perf
                chosen_region[j] = region
                placed_w[hi] += cs.s.min_w
                placed_r[hi] += cs.s.min_r
                placed_storage[hi] += cs.s.min_storage
                placed_ns[hi] += 1
                if pl.conn != NULL:
                    placed_conn[hi] += cs.s.min_conn
                if g >= 0:
                    count_group(&snap.r, &group_backend[g, 0], &group_region[g, 0], hi)
        if not size:
            chosen[j] = -1
            return j
    return m


def placement_pairs(LiveSnapshot snap, list slots, CorePolicy policy):
    """Every (slot, backend) pair that one step of ``assign`` could choose
    with nothing placed yet, with its score: the candidates of an optimal
    plan (optimal.py). The same call as ``assign_run`` makes (the placed
    rules, namespace limit included, over an all-zero placement) asking for
    every eligible backend instead of the best. Returns ``(slot, backend,
    score, performance, region)``: int64[E], int64[E], float64[E] x 3, slot
    by slot in the given order, each slot's backends best first."""
    cdef Py_ssize_t m = len(slots), j
    cdef index_t n = snap.r.n, size, t
    cdef Placed pl
    cdef PreparedSlot cs
    cdef score_t perf, region, aw, ar
    zero = np.zeros(max(n, 1))
    cdef score_t[::1] z = zero
    score_buf = np.empty(max(n, 1))
    perf_buf = np.empty(max(n, 1))
    region_buf = np.empty(max(n, 1))
    rank_buf = np.empty(max(n, 1), dtype=np.int64)
    index_buf = np.empty(max(n, 1), dtype=np.int64)
    cdef score_t[::1] hs = score_buf
    cdef score_t[::1] hp = perf_buf
    cdef score_t[::1] hg = region_buf
    cdef index_t[::1] hr = rank_buf
    cdef index_t[::1] hi = index_buf
    memset(&pl, 0, sizeof(Placed))  # no group rule, nothing bound only
    pl.w = &z[0]; pl.r = &z[0]; pl.storage = &z[0]; pl.ns = &z[0]; pl.conn = &z[0]
    parts = []
    for j in range(m):
        cs = <PreparedSlot>slots[j]
        with nogil:
            size = topk_scores(&snap.r, &cs.s, &policy.p, &pl, n, &hs[0], &hr[0], &hi[0])
            for t in range(size):
                _components(&snap.r, &cs.s, &policy.p, &pl, hi[t], &perf, &region, &aw, &ar)
                hp[t] = perf
                hg[t] = region
        if size:
            parts.append((np.full(size, j, dtype=np.int64), index_buf[:size].copy(), score_buf[:size].copy(),
                          perf_buf[:size].copy(), region_buf[:size].copy()))
    if not parts:
        return (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0), np.zeros(0))
    return tuple(np.concatenate(column) for column in zip(*parts))
