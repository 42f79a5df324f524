# The compiled core: fused filter + score + bounded top-k over the columns.
#
# Data flow: compiled.Columns (numpy) -> CoreRegistry (raw pointers, taken
# once) ; a SlotRequirement -> PreparedSlot (C struct, CoreRegistry.prepare) ;
# policy -> CorePolicy.
# `topk_scores` is the kernel: `noexcept nogil`, no Python objects, no checks
# (the Python layer validated everything once). Single matches hold the GIL
# (a ~µs loop), which makes `CoreRegistry.update` atomic with respect to them;
# batches run nogil over a snapshot of the live columns.

cimport cython
from libc.math cimport INFINITY, isnan
from libc.string cimport memset
from cpython.mem cimport PyMem_Malloc, PyMem_Free
from cpython.unicode cimport PyUnicode_KIND, PyUnicode_DATA, PyUnicode_READ, PyUnicode_GET_LENGTH
from cython.parallel cimport prange
from ._typedefs cimport mask_t, index_t, score_t, code_t

import numpy as np
cimport numpy as cnp

cnp.import_array()

cdef extern from *:
    """
    #if defined(_MSC_VER)
    #include <intrin.h>
    static inline int pm_ctz64(unsigned long long x) { unsigned long i; _BitScanForward64(&i, x); return (int)i; }
    #else
    static inline int pm_ctz64(unsigned long long x) { return __builtin_ctzll(x); }
    #endif
    """
    int pm_ctz64(unsigned long long x) noexcept nogil

cdef struct Reg:
    index_t n, nw, wr, wk
    const mask_t* feature_bits      # [Tf, nw]
    const mask_t* region_rows       # [n, wr]
    const mask_t* compliance_rows   # [n, wk]
    const code_t* btype
    const code_t* health
    const code_t* consistency
    const score_t* max_w
    const score_t* max_r
    const score_t* cur_w
    const score_t* cur_r
    const score_t* max_storage
    const score_t* storage_used
    const score_t* max_ns
    const score_t* ns_count
    const score_t* cost_score
    const score_t* avail_score
    const index_t* id_rank
    const index_t* lat_indptr
    const index_t* lat_token
    const index_t* lat_vtoken
    const score_t* lat_p99

cdef struct Slot:
    bint unmatchable
    index_t n_req
    const index_t* req_tokens
    bint region_filter
    const mask_t* region_any        # [wr]
    bint compliance_filter
    const mask_t* compliance_all    # [wk]
    unsigned int type_mask
    unsigned int health_mask
    int max_consistency
    score_t min_w, min_r, min_storage, max_lat_ms
    bint lat_all
    const mask_t* lat_mask          # [wf]
    index_t pref_region             # region bit, or -1

cdef struct Policy:
    score_t w_perf, w_cost, w_avail, w_region, cap
    bint available_basis

cdef struct Placed:                  # capacity consumed by an assignment so far
    const score_t* w
    const score_t* r
    const score_t* storage
    const score_t* ns


cdef inline const void* _ptr(object arr) except NULL:
    # Pointers are taken once, at construction; the Python layer guarantees
    # C-contiguous arrays of the right dtype and keeps them alive.
    if not cnp.PyArray_Check(arr) or not cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>arr):
        raise TypeError("expected a C-contiguous numpy array")
    cdef void* p = cnp.PyArray_DATA(<cnp.ndarray>arr)
    return <const void*>p if p != NULL else <const void*>&_EMPTY

cdef mask_t _EMPTY = 0


cdef inline bint _bit(const mask_t* words, index_t bit) noexcept nogil:
    return (words[bit >> 6] >> (bit & 63)) & 1


cdef inline bint _worse(score_t sa, index_t ra, score_t sb, index_t rb) noexcept nogil:
    # a ranks after b: lower score, or equal score and later backend_id.
    return sa < sb or (sa == sb and ra > rb)


cdef inline void _sift_down(score_t* hs, index_t* hr, index_t* hi, index_t size, index_t pos) noexcept nogil:
    # Min-heap on rank order: the root is the worst kept candidate.
    cdef index_t child, best
    cdef score_t ts
    cdef index_t tr, ti
    while True:
        child = 2 * pos + 1
        if child >= size:
            return
        best = child
        if child + 1 < size and _worse(hs[child + 1], hr[child + 1], hs[child], hr[child]):
            best = child + 1
        if not _worse(hs[best], hr[best], hs[pos], hr[pos]):
            return
        ts = hs[pos]; hs[pos] = hs[best]; hs[best] = ts
        tr = hr[pos]; hr[pos] = hr[best]; hr[best] = tr
        ti = hi[pos]; hi[pos] = hi[best]; hi[best] = ti
        pos = best


cdef inline void _sift_up(score_t* hs, index_t* hr, index_t* hi, index_t pos) noexcept nogil:
    cdef index_t parent
    cdef score_t ts
    cdef index_t tr, ti
    while pos > 0:
        parent = (pos - 1) >> 1
        if not _worse(hs[pos], hr[pos], hs[parent], hr[parent]):
            return
        ts = hs[pos]; hs[pos] = hs[parent]; hs[parent] = ts
        tr = hr[pos]; hr[pos] = hr[parent]; hr[parent] = tr
        ti = hi[pos]; hi[pos] = hi[parent]; hi[parent] = ti
        pos = parent


cdef inline score_t _headroom(score_t mx, score_t cur, const score_t* placed, index_t i) noexcept nogil:
    # What is left, clamped at 0: an overloaded backend has no headroom, not
    # a negative one (SPEC §1), so it still passes a minimum of 0.
    cdef score_t h = mx - cur
    if placed != NULL:
        h = h - placed[i]
    return h if h > 0 else 0.0


cdef inline bint _eligible(const Reg* r, const Slot* s, const Policy* p, const Placed* pl,
                           index_t i) noexcept nogil:
    """SPEC §3 rules 3-9 (+ namespaces when assigning) for backend i; rules 1-2
    are the caller's bitset AND."""
    cdef index_t e, w
    cdef bint hit
    cdef bint left = p.available_basis or pl != NULL
    if not ((s.health_mask >> r.health[i]) & 1):
        return False
    if not ((s.type_mask >> r.btype[i]) & 1):
        return False
    if left:
        if _headroom(r.max_w[i], r.cur_w[i], pl.w if pl != NULL else NULL, i) < s.min_w:
            return False
        if _headroom(r.max_r[i], r.cur_r[i], pl.r if pl != NULL else NULL, i) < s.min_r:
            return False
    else:
        if r.max_w[i] < s.min_w or r.max_r[i] < s.min_r:
            return False
    if s.min_storage > 0:
        if isnan(r.max_storage[i]):
            return False
        if left:
            if _headroom(r.max_storage[i], r.storage_used[i], pl.storage if pl != NULL else NULL, i) < s.min_storage:
                return False
        elif r.max_storage[i] < s.min_storage:
            return False
    if pl != NULL and r.max_ns[i] - r.ns_count[i] - pl.ns[i] < 1:
        return False
    if r.consistency[i] > s.max_consistency:
        return False
    if s.region_filter:
        hit = False
        for w in range(r.wr):
            if r.region_rows[i * r.wr + w] & s.region_any[w]:
                hit = True
                break
        if not hit:
            return False
    if s.compliance_filter:
        for w in range(r.wk):
            if (r.compliance_rows[i * r.wk + w] & s.compliance_all[w]) != s.compliance_all[w]:
                return False
    if s.max_lat_ms < INFINITY:
        for e in range(r.lat_indptr[i], r.lat_indptr[i + 1]):
            if (s.lat_all or _bit(s.lat_mask, r.lat_token[e]) or _bit(s.lat_mask, r.lat_vtoken[e])) \
                    and r.lat_p99[e] > s.max_lat_ms:
                return False
    return True


cdef inline void _components(const Reg* r, const Slot* s, const Policy* p, const Placed* pl, index_t i,
                             score_t* perf, score_t* region, score_t* avail_w, score_t* avail_r) noexcept nogil:
    """SPEC §4's performance and region terms, and the headroom they used."""
    cdef score_t aw = _headroom(r.max_w[i], r.cur_w[i], pl.w if pl != NULL else NULL, i)
    cdef score_t ar = _headroom(r.max_r[i], r.cur_r[i], pl.r if pl != NULL else NULL, i)
    cdef score_t rw, rr
    rw = aw / s.min_w if s.min_w > 0 else p.cap
    rr = ar / s.min_r if s.min_r > 0 else p.cap
    perf[0] = rw if rw < rr else rr
    if p.cap < perf[0]:
        perf[0] = p.cap
    region[0] = 1.0 if (s.pref_region >= 0 and _bit(r.region_rows + i * r.wr, s.pref_region)) else 0.0
    avail_w[0] = aw
    avail_r[0] = ar


cdef inline score_t _score(const Reg* r, const Policy* p, index_t i, score_t perf, score_t region) noexcept nogil:
    # One fixed operation order (and no FMA contraction, see setup.py) so every
    # path computes the same bits.
    return p.w_perf * perf + p.w_cost * r.cost_score[i] + p.w_avail * r.avail_score[i] + p.w_region * region


cdef index_t topk_scores(const Reg* r, const Slot* s, const Policy* p, const Placed* pl, index_t k,
                         score_t* hs, index_t* hr, index_t* hi) noexcept nogil:
    """Best k eligible backends into (hs, hr, hi) = (score, id rank, index),
    best first; returns how many. Buffers hold k entries."""
    cdef index_t size = 0, w, j, i, nw = r.nw, last
    cdef mask_t word, tail
    cdef score_t perf, region, aw, ar, sc, bound
    cdef score_t region_max = 1.0 if s.pref_region >= 0 else 0.0
    cdef score_t ts
    cdef index_t tr, ti
    if s.unmatchable or k <= 0 or r.n == 0:
        return 0
    tail = (~<mask_t>0) if (r.n & 63) == 0 else ((<mask_t>1 << (r.n & 63)) - 1)
    for w in range(nw):
        word = ~<mask_t>0
        for j in range(s.n_req):
            word &= r.feature_bits[s.req_tokens[j] * nw + w]
        if w == nw - 1:
            word &= tail
        while word:
            i = (w << 6) + pm_ctz64(word)
            word &= word - 1
            if size == k:
                # Prune before touching the rest of the row: the score can be
                # no higher than with perf at its cap and the region term won
                # (rounding is monotonic, so this bound is exact in floats).
                bound = p.w_perf * p.cap + p.w_cost * r.cost_score[i] + p.w_avail * r.avail_score[i] \
                    + p.w_region * region_max
                if bound < hs[0] or (bound == hs[0] and r.id_rank[i] > hr[0]):
                    continue
            if not _eligible(r, s, p, pl, i):
                continue
            _components(r, s, p, pl, i, &perf, &region, &aw, &ar)
            sc = _score(r, p, i, perf, region)
            if size < k:
                hs[size] = sc; hr[size] = r.id_rank[i]; hi[size] = i
                _sift_up(hs, hr, hi, size)
                size += 1
            elif _worse(hs[0], hr[0], sc, r.id_rank[i]):
                hs[0] = sc; hr[0] = r.id_rank[i]; hi[0] = i
                _sift_down(hs, hr, hi, size, 0)
    # Heap-sort in place: pop the worst to the back until the front is best.
    last = size - 1
    while last > 0:
        ts = hs[0]; hs[0] = hs[last]; hs[last] = ts
        tr = hr[0]; hr[0] = hr[last]; hr[last] = tr
        ti = hi[0]; hi[0] = hi[last]; hi[last] = ti
        _sift_down(hs, hr, hi, last, 0)
        last -= 1
    return size


# --- Python-facing objects ----------------------------------------------------------

cdef class CorePolicy:
    """The policy as the kernel reads it (built by policy.MatchPolicy)."""
    cdef Policy p

    def __init__(self, double w_perf, double w_cost, double w_avail, double w_region, double cap,
                 bint available_basis):
        self.p.w_perf = w_perf
        self.p.w_cost = w_cost
        self.p.w_avail = w_avail
        self.p.w_region = w_region
        self.p.cap = cap
        self.p.available_basis = available_basis


cdef enum:
    _SLOT_CACHE = 256    # slot mappings remembered per registry (see CoreRegistry.resolve)
    _INLINE_WORDS = 12   # a slot's tokens and masks fit here unless the vocabularies are large


@cython.final
cdef class PreparedSlot:
    """A slot requirement compiled for one registry (``Registry.prepare``).

    The kernel reads the C struct, built by ``CoreRegistry.prepare`` without
    a numpy array or a Python container per slot. What explain, reasons and
    the numpy path read (``requirements``, ``region_bits``, ...) is computed
    by ``prepare.slot_details`` from the requirement on first access: the
    hot path never pays for it, and the two preparations check each other
    in the tests.
    """
    cdef Slot s
    cdef mask_t _inline[_INLINE_WORDS]
    cdef mask_t* _heap
    cdef readonly object requirement     # the validated SlotRequirement
    cdef readonly object columns         # the registry's columns it was prepared for
    cdef readonly tuple default_health   # the policy's statuses it was prepared with
    cdef object _details

    def __cinit__(self):
        self._heap = NULL

    def __dealloc__(self):
        PyMem_Free(self._heap)

    cdef mask_t* _words(self, Py_ssize_t n) except NULL:
        cdef mask_t* out = self._inline
        if n > _INLINE_WORDS:
            self._heap = <mask_t*>PyMem_Malloc(n * sizeof(mask_t))
            if self._heap == NULL:
                raise MemoryError()
            out = self._heap
        memset(out, 0, max(n, 1) * sizeof(mask_t))
        return out

    def __reduce__(self):
        raise TypeError("A prepared slot belongs to one registry in this process; pickle the slot "
                        "mapping (or .requirement) and prepare it where it is used")

    def __repr__(self):
        return f"<PreparedSlot {self.requirement.slot_name!r}{' (unmatchable)' if self.s.unmatchable else ''}>"

    @property
    def slot_name(self):
        return self.requirement.slot_name

    @property
    def optional(self):
        return self.requirement.optional

    @property
    def unmatchable(self):
        """True when no backend can match: a required name, compliance tag
        or every listed region is unknown to the registry."""
        return self.s.unmatchable

    @property
    def details(self):
        """``prepare.SlotDetails``: the requirement as explain and the numpy path read it."""
        if self._details is None:
            from .prepare import slot_details
            self._details = slot_details(self.columns, self.requirement, self.default_health)
        return self._details

    def __getattr__(self, name):
        # Only reached when no attribute of that name exists: the fields of
        # prepare.SlotDetails (requirements, min_write_rps, region_bits, ...)
        # read through, so explain and reasons never touch the C struct.
        if not name.startswith("_"):  # a protocol probe (__array__, ...) does not build details
            details = self.details
            if name in details.__dataclass_fields__:
                return getattr(details, name)
        raise AttributeError(f"'PreparedSlot' object has no attribute '{name}'")

    def unknown_names(self):
        return [r for r in self.details.requirements if r.bit is None]

    def kernel_view(self):
        """The C struct the kernel reads, as plain Python values (for tests)."""
        wr, wk, wf = self.columns.regions.words, self.columns.compliance.words, self.columns.features.words
        return {
            "unmatchable": bool(self.s.unmatchable),
            "req_tokens": [self.s.req_tokens[i] for i in range(self.s.n_req)],
            "region_filter": bool(self.s.region_filter),
            "region_any": [self.s.region_any[i] for i in range(wr)],
            "compliance_filter": bool(self.s.compliance_filter),
            "compliance_all": [self.s.compliance_all[i] for i in range(wk)],
            "type_mask": self.s.type_mask,
            "health_mask": self.s.health_mask,
            "max_consistency": self.s.max_consistency,
            "min_w": self.s.min_w,
            "min_r": self.s.min_r,
            "min_storage": self.s.min_storage,
            "max_lat_ms": self.s.max_lat_ms,
            "lat_all": bool(self.s.lat_all),
            "lat_mask": [self.s.lat_mask[i] for i in range(wf)],
            "pref_region": self.s.pref_region,
        }


cdef inline void _set_bit(mask_t* words, index_t bit) noexcept nogil:
    words[bit >> 6] |= (<mask_t>1) << (bit & 63)


cdef inline index_t _add_token(index_t* tokens, index_t n, index_t bit) noexcept nogil:
    # Insert into the sorted, duplicate-free list; returns the new length.
    cdef index_t j = n
    cdef index_t i
    for i in range(n):
        if tokens[i] == bit:
            return n
    while j > 0 and tokens[j - 1] > bit:
        tokens[j] = tokens[j - 1]
        j -= 1
    tokens[j] = bit
    return n + 1


cdef inline bint _require(index_t bit, index_t* tokens, index_t* n, mask_t* lat) noexcept nogil:
    # One required feature (and, with ``lat``, a capability under a latency
    # bound); True when no backend declares it (bit -1).
    if bit < 0:
        return True
    n[0] = _add_token(tokens, n[0], bit)
    if lat != NULL:
        _set_bit(lat, bit)
    return False


cdef inline unsigned int _code_mask(dict codes, object names, str what) except? 0:
    cdef unsigned int mask = 0
    for name in names:
        code = codes.get(name)
        if code is None:
            raise _error(f"Expected one of {', '.join('`%s`' % c for c in codes)}, got `{str(name)[:40]}`",
                         f"slot {what}")
        mask |= 1u << <int>code
    return mask


cdef class Match:
    """One ranked backend for a slot. ``reasons`` are built on first read."""
    cdef readonly str backend_id
    cdef readonly double score, performance, cost, availability, region
    cdef readonly double available_write_rps, available_read_rps
    cdef readonly Py_ssize_t index
    cdef readonly object slot
    cdef object _registry
    cdef object _reasons

    @property
    def reasons(self):
        if self._reasons is None:
            self._reasons = self._registry._build_reasons(self)
        return self._reasons

    @property
    def components(self):
        return {"performance": self.performance, "cost": self.cost,
                "availability": self.availability, "region": self.region}

    def as_dict(self, *, reasons=False):
        out = {"backend_id": self.backend_id, "score": self.score, "performance": self.performance,
               "cost": self.cost, "availability": self.availability, "region": self.region}
        if reasons:
            out["reasons"] = [r.as_dict() for r in self.reasons]
        return out

    def __repr__(self):
        return f"Match(backend_id={self.backend_id!r}, score={self.score:.6f})"

    def __reduce__(self):
        raise TypeError("Match objects refer to their registry; use .as_dict()")


cdef class CoreRegistry:
    """Raw pointers into the compiled columns, and the live-state updater."""
    cdef Reg r
    cdef readonly object columns
    cdef readonly list backend_ids
    cdef dict _index
    cdef score_t* _cur_w
    cdef score_t* _cur_r
    cdef score_t* _storage_used
    cdef score_t* _ns_count
    cdef score_t* _uptime
    cdef score_t* _avail_score
    cdef code_t* _health
    cdef object _owner   # the Registry, for reasons (weakly held by matches via it)
    # Preparing: the vocabularies, and each requirement as written -> its bit
    # (-1: unknown), kept per registry since the vocabularies never change.
    cdef dict _features, _regions, _compliance, _cap_bits, _ifc_bits
    cdef dict _type_code, _health_code, _consistency_code   # name -> code
    cdef int _unknown_consistency
    cdef unsigned int _all_types
    cdef index_t _txn_bit
    cdef index_t _wf     # words of a feature mask (the transposed bitsets have backend words: r.nw)
    # Slot mappings seen lately, by content (their msgpack encoding) -> PreparedSlot.
    cdef dict _slots
    cdef tuple _default_health
    cdef unsigned int _default_health_mask

    def __init__(self, columns, owner):
        c = columns
        self.columns = c
        self.backend_ids = c.backend_ids
        self._index = None  # built on first use: a snapshot of 1M backends need not pay for it to match
        self._owner = owner
        self.r.n = c.n
        self.r.nw = c.feature_bits.shape[1]
        self.r.wr = c.region_rows.shape[1]
        self.r.wk = c.compliance_rows.shape[1]
        self.r.feature_bits = <const mask_t*>_ptr(c.feature_bits)
        self.r.region_rows = <const mask_t*>_ptr(c.region_rows)
        self.r.compliance_rows = <const mask_t*>_ptr(c.compliance_rows)
        self.r.btype = <const code_t*>_ptr(c.backend_type)
        self.r.health = <const code_t*>_ptr(c.health)
        self.r.consistency = <const code_t*>_ptr(c.consistency)
        self.r.max_w = <const score_t*>_ptr(c.max_write_rps)
        self.r.max_r = <const score_t*>_ptr(c.max_read_rps)
        self.r.cur_w = <const score_t*>_ptr(c.write_rps)
        self.r.cur_r = <const score_t*>_ptr(c.read_rps)
        self.r.max_storage = <const score_t*>_ptr(c.max_storage)
        self.r.storage_used = <const score_t*>_ptr(c.storage_used)
        self.r.max_ns = <const score_t*>_ptr(c.max_namespaces)
        self.r.ns_count = <const score_t*>_ptr(c.namespace_count)
        self.r.cost_score = <const score_t*>_ptr(c.cost_score)
        self.r.avail_score = <const score_t*>_ptr(c.avail_score)
        self.r.id_rank = <const index_t*>_ptr(c.id_rank)
        self.r.lat_indptr = <const index_t*>_ptr(c.lat_indptr)
        self.r.lat_token = <const index_t*>_ptr(c.lat_token)
        self.r.lat_vtoken = <const index_t*>_ptr(c.lat_vtoken)
        self.r.lat_p99 = <const score_t*>_ptr(c.lat_p99_ms)
        self._cur_w = <score_t*>self.r.cur_w
        self._cur_r = <score_t*>self.r.cur_r
        self._storage_used = <score_t*>self.r.storage_used
        self._ns_count = <score_t*>self.r.ns_count
        self._uptime = <score_t*>_ptr(c.uptime_percent_24h)
        self._avail_score = <score_t*>self.r.avail_score
        self._health = <code_t*>self.r.health
        from .compiled import CONSISTENCY_CODE, HEALTH_CODE, TYPE_CODE, UNKNOWN_CONSISTENCY
        self._features = c.features.index
        self._regions = c.regions.index
        self._compliance = c.compliance.index
        self._cap_bits = {}
        self._ifc_bits = {}
        self._type_code = TYPE_CODE
        self._health_code = HEALTH_CODE
        self._consistency_code = CONSISTENCY_CODE
        self._unknown_consistency = UNKNOWN_CONSISTENCY
        self._all_types = (1u << len(TYPE_CODE)) - 1
        self._txn_bit = self._features.get("c:transaction", -1)
        self._wf = c.features.words
        self._slots = {}
        _load_slot_codec()

    @property
    def index(self):
        """backend_id → position."""
        if self._index is None:
            self._index = dict(zip(self.backend_ids, range(len(self.backend_ids))))
        return self._index

    def set_default_health(self, tuple statuses):
        """The statuses a slot that names none accepts (the policy's). When
        they change, slots prepared before are forgotten: they baked the old
        ones in. The same statuses again keep the slots and the cache."""
        if statuses == self._default_health:
            return
        self._default_health_mask = _code_mask(self._health_code, statuses, "health_statuses")
        self._default_health = statuses
        self._slots = {}

    @property
    def cached_slots(self):
        """How many slot mappings are remembered now (at most 256)."""
        return len(self._slots)

    def prepare_requirement(self, requirement):
        """A validated SlotRequirement, prepared under the current default statuses."""
        return self.prepare(requirement, self._default_health, self._default_health_mask)

    cpdef PreparedSlot resolve(self, object slot, bint cache=True):
        """Any slot the API accepts -> a PreparedSlot for this registry.

        The hot cases stay here, in C: a slot prepared for this registry
        under the current statuses is returned as is, and a plain dict is
        encoded once (msgpack): the bytes are the cache key (``cache``), and
        the input of a prebuilt typed decoder. Anything else, and a dict
        that does not decode, goes to the owner's general path
        (``Registry._compile``), which reports every problem with its path.
        """
        cdef PreparedSlot ps
        cdef bytes key
        if type(slot) is PreparedSlot:
            ps = <PreparedSlot>slot
            if ps.columns is self.columns and (ps.default_health is self._default_health
                                               or ps.requirement.health_statuses is not None):
                return ps  # the default statuses it baked in are the current ones, or unused
            return self._owner.prepare(slot)
        if type(slot) is not dict:
            return self._owner._compile(slot)
        try:
            key = _encode_slot(slot)
        except (TypeError, ValueError, OverflowError, RecursionError):
            return self._owner._compile(slot)
        if cache:
            found = self._slots.get(key)
            if found is not None:
                return <PreparedSlot>found
        requirement = None
        if "slot_name" in <dict>slot:
            try:
                requirement = _decode_slot(key)
            except (_ValidationError, RecursionError):
                pass
        if requirement is not None:
            ps = self.prepare(requirement, self._default_health, self._default_health_mask)
        else:
            ps = self._owner._compile(slot)
        if cache:
            # Bounded by clearing: keeping an eviction order costs more per
            # miss than the cache saves (the evicted slot is cold in memory).
            if len(self._slots) >= _SLOT_CACHE:
                self._slots = {}
            self._slots[key] = ps
        return ps

    def match(self, slot, CorePolicy policy, Py_ssize_t k):
        """``topk`` of any slot the API accepts."""
        return self._topk(self.resolve(slot), policy, k)

    cdef index_t _feature_bit(self, dict memo, object item, bint capability) except -2:
        found = memo.get(item)
        if found is None:
            from .vocabulary import requirement_token
            found = self._features.get(requirement_token("capability" if capability else "interface", item), -1)
            if len(memo) >= 65536:  # names nobody declares must not grow it without bound
                memo.clear()
            memo[item] = found
        return found

    def prepare(self, requirement, tuple default_health, unsigned int default_health_mask):
        """Compile a validated SlotRequirement into the kernel's struct (see
        ``prepare.slot_details`` for the same rules written out in Python)."""
        cdef PreparedSlot ps = PreparedSlot.__new__(PreparedSlot)
        cdef Slot* s = &ps.s
        cdef object perf = requirement.performance
        cdef object caps = requirement.capabilities   # lists once validated; any sequence works
        cdef object ifcs = requirement.interfaces
        cdef bint txn = perf is not None and (perf.requires_transactions or perf.requires_atomic_writes)
        cdef Py_ssize_t n_items = len(caps) + len(ifcs) + txn
        cdef index_t wr = self.r.wr, wk = self.r.wk
        cdef mask_t* words = ps._words(n_items + wr + wk + self._wf)
        cdef index_t* tokens = <index_t*>words
        cdef mask_t* region_any = words + n_items
        cdef mask_t* compliance_all = region_any + wr
        cdef mask_t* lat_mask = compliance_all + wk
        cdef index_t n = 0
        cdef mask_t* lat
        cdef bint unmatchable = False, any_region = False
        cdef object value
        ps.requirement = requirement
        ps.columns = self.columns
        ps.default_health = default_health

        s.min_w = perf.min_write_rps if perf is not None else 0.0
        s.min_r = perf.min_read_rps if perf is not None else 0.0
        value = requirement.min_storage
        if value is None and perf is not None:
            value = perf.min_storage
        s.min_storage = value if value is not None else 0.0
        value = perf.max_latency_p99 if perf is not None else None
        s.max_lat_ms = value if value is not None else INFINITY

        lat = lat_mask if s.max_lat_ms < INFINITY else NULL  # latency applies to required capabilities
        for item in ifcs:
            unmatchable |= _require(self._feature_bit(self._ifc_bits, item, False), tokens, &n, NULL)
        for item in caps:
            unmatchable |= _require(self._feature_bit(self._cap_bits, item, True), tokens, &n, lat)
        if txn:
            unmatchable |= _require(self._txn_bit, tokens, &n, lat)
        s.n_req = n
        s.req_tokens = tokens
        s.lat_all = len(caps) + txn == 0
        s.lat_mask = lat_mask

        value = requirement.regions
        s.region_filter = value is not None
        if value is not None:
            for name in value:
                found = self._regions.get(name)
                if found is not None:
                    _set_bit(region_any, found)
                    any_region = True
            unmatchable |= not any_region
        s.region_any = region_any
        value = requirement.compliance
        s.compliance_filter = bool(value)
        if value:
            for name in value:
                found = self._compliance.get(name)
                if found is None:
                    unmatchable = True
                else:
                    _set_bit(compliance_all, found)
        s.compliance_all = compliance_all

        value = requirement.backend_types
        s.type_mask = self._all_types if value is None else _code_mask(self._type_code, value, "backend_types")
        value = requirement.health_statuses
        s.health_mask = default_health_mask if value is None else \
            _code_mask(self._health_code, value, "health_statuses")
        value = requirement.consistency
        if value is None:
            s.max_consistency = self._unknown_consistency
        else:
            found = self._consistency_code.get(value)
            if found is None:
                raise _error(f"Expected one of {', '.join('`%s`' % c for c in self._consistency_code)}, "
                             f"got `{str(value)[:40]}`", "slot consistency")
            s.max_consistency = found
        value = requirement.preferred_region
        s.pref_region = self._regions.get(value, -1) if value else -1
        s.unmatchable = unmatchable
        return ps

    def topk(self, PreparedSlot slot, CorePolicy policy, Py_ssize_t k):
        """Best ``k`` matches (list of Match), best first."""
        return self._topk(slot, policy, k)

    cdef list _topk(self, PreparedSlot slot, CorePolicy policy, Py_ssize_t k):
        cdef index_t kk = min(k, self.r.n)
        cdef index_t i, j, size
        cdef score_t perf, region, aw, ar
        cdef score_t hs_small[16]
        cdef index_t hr_small[16]
        cdef index_t hi_small[16]
        cdef score_t* hs = hs_small
        cdef index_t* hr = hr_small
        cdef index_t* hi = hi_small
        cdef object bufs = None
        cdef Match m
        cdef list out = []
        if kk <= 0:
            return out
        if kk > 16:
            bufs = (np.empty(kk, dtype=np.float64), np.empty(kk, dtype=np.int64), np.empty(kk, dtype=np.int64))
            hs = <score_t*>_ptr(bufs[0]); hr = <index_t*>_ptr(bufs[1]); hi = <index_t*>_ptr(bufs[2])
        size = topk_scores(&self.r, &slot.s, &policy.p, NULL, kk, hs, hr, hi)
        for j in range(size):
            i = hi[j]
            _components(&self.r, &slot.s, &policy.p, NULL, i, &perf, &region, &aw, &ar)
            m = Match.__new__(Match)
            m.backend_id = self.backend_ids[i]
            m.index = i
            m.score = hs[j]
            m.performance = perf
            m.cost = self.r.cost_score[i]
            m.availability = self.r.avail_score[i]
            m.region = region
            m.available_write_rps = aw
            m.available_read_rps = ar
            m.slot = slot
            m._registry = self._owner
            out.append(m)
        return out

    def update(self, backend_id, *, write_rps=None, read_rps=None, storage_used=None,
               namespace_count=None, status=None, uptime=None):
        """Change one backend's live state in place (constant time).

        All arguments are checked before anything is written, and the writes
        happen without releasing the GIL, so a concurrent single match sees
        the backend wholly before or wholly after the update.
        """
        cdef dict index = self._index if self._index is not None else self.index
        cdef object pos = index.get(backend_id) if type(backend_id) is str else None
        cdef Py_ssize_t i
        cdef double w, r, st, ns, up
        cdef int code = -1
        if pos is None:
            if not isinstance(backend_id, str):
                raise _error(f"Expected a backend_id (`str`), got `{type(backend_id).__name__}`", "update")
            pos = index.get(backend_id)  # a str subclass
            if pos is None:
                raise _error(f"Unknown backend `{backend_id[:60]}`", "update")
        i = pos
        w = _live_number("write_rps", write_rps)
        r = _live_number("read_rps", read_rps)
        st = _live_number("storage_used", storage_used)
        ns = _live_number("namespace_count", namespace_count)
        up = _live_number("uptime", uptime)
        if up == up and up > 100:
            raise _error(f"Expected a percentage in [0, 100], got `{uptime}`", "update uptime")
        if status is not None:
            code = self._health_code.get(status, -1) if isinstance(status, str) else -1
            if code < 0:
                raise _error(f"Expected one of {', '.join('`%s`' % s for s in self._health_code)}, "
                             f"got `{str(status)[:40]}`", "update status")
        if w == w:
            self._cur_w[i] = w
        if r == r:
            self._cur_r[i] = r
        if st == st:
            self._storage_used[i] = st
        if ns == ns:
            self._ns_count[i] = ns
        if up == up:
            self._uptime[i] = up
            self._avail_score[i] = up / 100.0
        if code >= 0:
            self._health[i] = <code_t>code


    def add_usage(self, score_t[::1] write_rps, score_t[::1] read_rps, score_t[::1] storage_used,
                  score_t[::1] namespace_count):
        """Add placed usage to the live columns (``assign(commit=True)``), in one
        loop that keeps the GIL, so single matches see all of it or none."""
        cdef Py_ssize_t i
        for i in range(self.r.n):
            self._cur_w[i] += write_rps[i]
            self._cur_r[i] += read_rps[i]
            self._storage_used[i] += storage_used[i]
            self._ns_count[i] += namespace_count[i]


cdef double _live_number(str name, object value) except? -2:
    # NaN means "not given"; anything else must be a finite number >= 0.
    cdef double x
    if value is None:
        return float("nan")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _error(f"Expected a number, got `{type(value).__name__}`", f"update {name}")
    try:
        x = value
    except OverflowError:
        raise _error("Expected a finite number, got a number too large for a float", f"update {name}")
    if not (x >= 0 and x < INFINITY):
        raise _error(f"Expected a finite number >= 0, got `{value}`", f"update {name}")
    return x


_encode_slot = None
_decode_slot = None
_ValidationError = None


cdef _load_slot_codec():
    # Lazily: schema imports this module (first_control_char).
    global _encode_slot, _decode_slot, _ValidationError
    if _decode_slot is None:
        import msgspec
        from .schema import SlotRequirement, decode_hook
        _encode_slot = msgspec.msgpack.Encoder().encode
        _decode_slot = msgspec.msgpack.Decoder(SlotRequirement, dec_hook=decode_hook).decode
        _ValidationError = msgspec.ValidationError


cdef inline bint _has_control(str text):
    cdef Py_ssize_t i, n = PyUnicode_GET_LENGTH(text)
    cdef int kind = PyUnicode_KIND(text)
    cdef void* data = PyUnicode_DATA(text)
    for i in range(n):
        if PyUnicode_READ(kind, data, i) < 0x20:
            return True
    return False


def first_control_char(obj, tuple fields):
    """``(path, value)`` of the first name in ``fields`` of ``obj`` holding a
    control character, or None. A field is a str, None, or a list of str and
    ``{name, version}`` Structs. One pass in C: the slot schema checks its
    names with this instead of a regular expression per string."""
    cdef Py_ssize_t j
    cdef str field
    for field in fields:
        value = getattr(obj, field)
        if value is None:
            continue
        if isinstance(value, str):
            if _has_control(value):
                return f"$.{field}", value
        elif isinstance(value, list):
            for j in range(len(<list>value)):
                item = (<list>value)[j]
                if isinstance(item, str):
                    if _has_control(item):
                        return f"$.{field}[{j}]", item
                else:
                    for sub in ("name", "version"):
                        text = getattr(item, sub, None)
                        if isinstance(text, str) and _has_control(text):
                            return f"$.{field}[{j}].{sub}", text
    return None


cdef class NameCheck:
    """A Struct's ``__post_init__``: no control character in the names held
    by ``fields`` (see ``first_control_char``). Called by msgspec with the
    Struct after decoding or construction; no Python frame on the way."""
    cdef tuple fields
    cdef object fail

    def __init__(self, tuple fields, fail):
        self.fields = fields
        self.fail = fail  # fail(path, value) raises

    def __call__(self, obj):
        bad = first_control_char(obj, self.fields)
        if bad is not None:
            self.fail(*bad)


def _error(message, location):
    from .errors import RegistryError
    return RegistryError(message, location)


# --- batches: many slots, one registry snapshot ----------------------------------------

from libc.stdlib cimport malloc, free


cdef class LiveSnapshot:
    """Copies of the live columns, taken under the GIL: a batch that runs
    nogil reads these, so concurrent updates cannot tear its view."""
    cdef Reg r
    cdef object _keep

    def __init__(self, CoreRegistry core):
        c = core.columns
        keep = (c.write_rps.copy(), c.read_rps.copy(), c.storage_used.copy(), c.namespace_count.copy(),
                c.avail_score.copy(), c.health.copy())
        self._keep = keep
        self.r = core.r
        self.r.cur_w = <const score_t*>_ptr(keep[0])
        self.r.cur_r = <const score_t*>_ptr(keep[1])
        self.r.storage_used = <const score_t*>_ptr(keep[2])
        self.r.ns_count = <const score_t*>_ptr(keep[3])
        self.r.avail_score = <const score_t*>_ptr(keep[4])
        self.r.health = <const code_t*>_ptr(keep[5])

    @property
    def arrays(self):
        """(write_rps, read_rps, storage_used, namespace_count, avail_score, health) as copied."""
        return self._keep


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
                size = topk_scores(&snap.r, &cs[j], &policy.p, NULL, k, &out_score[start + j, 0],
                                   &ranks[j * k], &out_idx[start + j, 0])
                out_count[start + j] = size
                for t in range(size):
                    i = out_idx[start + j, t]
                    _components(&snap.r, &cs[j], &policy.p, NULL, i, &perf, &region, &aw, &ar)
                    out_perf[start + j, t] = perf
                    out_region[start + j, t] = region
    finally:
        free(cs)
        free(ranks)


# --- capacity-aware placement ------------------------------------------------------------

def assign_run(LiveSnapshot snap, list slots, CorePolicy policy, Py_ssize_t start,
               score_t[::1] placed_w, score_t[::1] placed_r, score_t[::1] placed_storage,
               score_t[::1] placed_ns, index_t[::1] chosen, score_t[::1] chosen_score,
               score_t[::1] chosen_perf, score_t[::1] chosen_region):
    """Place ``slots[start:]`` in order, each on its best backend given what
    earlier placements consumed (SPEC §6 assign). Stops at the first slot that
    cannot be placed and returns its position (the caller diagnoses it against
    the placed state of that moment, then resumes after it); returns
    ``len(slots)`` when all are done."""
    cdef Py_ssize_t m = len(slots), j
    cdef Placed pl
    cdef PreparedSlot cs
    cdef score_t hs
    cdef index_t hr, hi, size
    cdef score_t perf, region, aw, ar
    pl.w = &placed_w[0]
    pl.r = &placed_r[0]
    pl.storage = &placed_storage[0]
    pl.ns = &placed_ns[0]
    for j in range(start, m):
        cs = <PreparedSlot>slots[j]
        with nogil:
            size = topk_scores(&snap.r, &cs.s, &policy.p, &pl, 1, &hs, &hr, &hi)
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
        if not size:
            chosen[j] = -1
            return j
    return m
