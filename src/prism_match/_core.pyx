# The compiled core: fused filter + score + bounded top-k over the columns.
#
# Data flow: compiled.Columns (numpy, with spare room) -> CoreRegistry (raw
# pointers, taken again when an array is replaced) ; a SlotRequirement ->
# PreparedSlot (C struct, _prepare.pxi) ; policy -> CorePolicy.
# Parts: _kernel.pxi (the `noexcept nogil` loops: rules, score, top-k, the
# diagnosis pass), _prepare.pxi (slot preparation), this file (the objects
# Python holds: CorePolicy, Match, CoreRegistry), _living.pxi (a registration
# as a row, written into a position in one call) and _batch.pxi (many slots,
# placement). Single matches hold the GIL (a ~µs loop), which makes every
# change made here (update, reserve, release, add, remove) atomic with
# respect to them; batches run nogil over a LiveSnapshot.
#
# Nothing here calls up into the registry: what the core needs from above
# (the general slot path, the reasons builder) is passed in at construction.

cimport cython
from libc.math cimport INFINITY, NAN, isnan
from libc.string cimport memcpy, memset
from libc.stdint cimport int32_t, int64_t
from libc.stdlib cimport malloc, free, qsort
from cpython.mem cimport PyMem_Malloc, PyMem_Realloc, PyMem_Free
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE
from cython.parallel cimport prange
from fastrlock.rlock cimport lock_fastrlock, unlock_fastrlock
from ._typedefs cimport mask_t, index_t, score_t, code_t, rules_t
from ._rules cimport *

import numpy as np
cimport numpy as cnp

cnp.import_array()


cdef inline const void* _ptr(object arr) except NULL:
    # Pointers are taken once per array; the Python layer guarantees
    # C-contiguous arrays of the right dtype and keeps them alive.
    if not cnp.PyArray_Check(arr) or not cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>arr):
        raise TypeError("expected a C-contiguous numpy array")
    cdef void* p = cnp.PyArray_DATA(<cnp.ndarray>arr)
    return <const void*>p if p != NULL else <const void*>&_EMPTY

cdef mask_t _EMPTY = 0


include "_kernel.pxi"

_SCAN_TYPE_CODE = _SCAN_HEALTH_CODE = None
_SCAN_UNKNOWN_CONSISTENCY = 0


cdef _load_codes():
    # Lazily: compiled imports this module. (The scan order's rows per code.)
    global _SCAN_TYPE_CODE, _SCAN_HEALTH_CODE, _SCAN_UNKNOWN_CONSISTENCY
    if _SCAN_TYPE_CODE is None:
        from .compiled import HEALTH_CODE, TYPE_CODE, UNKNOWN_CONSISTENCY
        _SCAN_TYPE_CODE, _SCAN_HEALTH_CODE, _SCAN_UNKNOWN_CONSISTENCY = TYPE_CODE, HEALTH_CODE, UNKNOWN_CONSISTENCY


include "_order.pxi"


def rule_bits():
    """The C enum's bits in table order (tests hold them to rules.RULES)."""
    return (RULE_MISSING_INTERFACE, RULE_MISSING_CAPABILITY, RULE_WRITE_CAPACITY, RULE_READ_CAPACITY,
            RULE_LATENCY, RULE_HEALTH, RULE_REGION, RULE_COMPLIANCE, RULE_BACKEND_TYPE, RULE_STORAGE,
            RULE_CONSISTENCY, RULE_NAMESPACES, RULE_CONNECTIONS, RULE_GROUP_BACKEND, RULE_GROUP_REGION,
            RULE_GROUP_SKEW, RULE_LATENCY_PERCENTILE, RULE_BATCH, RULE_CONCURRENCY, RULE_CAPABILITY_THROUGHPUT)


cdef class CorePolicy:
    """The policy as the kernel reads it (built by policy.MatchPolicy)."""
    cdef Policy p

    def __init__(self, double w_perf, double w_cost, double w_avail, double w_region, double cap,
                 bint available_basis, bint binpack=False, double w_affinity=0.0, double degraded_penalty=0.0,
                 double stickiness=0.0, double incident_penalty=0.0):
        self.p.w_perf = w_perf
        self.p.w_cost = w_cost
        self.p.w_avail = w_avail
        self.p.w_region = w_region
        self.p.cap = cap
        self.p.available_basis = available_basis
        self.p.binpack = binpack
        self.p.w_affinity = w_affinity
        self.p.degraded_penalty = degraded_penalty
        self.p.stickiness = stickiness
        self.p.incident_penalty = incident_penalty


include "_prepare.pxi"


cdef class Match:
    """One ranked backend for a slot. ``reasons`` are built on first read."""
    cdef readonly str backend_id
    cdef readonly double score, performance, cost, availability, region, affinity
    cdef readonly double available_write_rps, available_read_rps
    cdef readonly Py_ssize_t index
    cdef readonly object slot
    cdef object _reasons_of
    cdef object _reasons

    @property
    def reasons(self):
        if self._reasons is None:
            self._reasons = self._reasons_of(self)
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


include "_changelog.pxi"


def _by_key_then_label(key, label):
    """The permutation that sorts by ``key`` descending, then ``label``
    ascending: ``np.lexsort((label, -key))``, in a third less time. The
    labels of live backends are distinct, so one unstable sort of a
    single int64 (the key's rank among the distinct keys, then the
    label's rank) gives that exact permutation; two argsorts and a
    ``unique`` where ``lexsort`` runs two stable merge sorts."""
    n = len(label)
    if n >= (1 << 31):
        return np.lexsort((label, -key))
    ranks = np.empty(n, dtype=np.int64)
    ranks[np.argsort(label)] = np.arange(n, dtype=np.int64)
    codes = np.unique(-key, return_inverse=True)[1].astype(np.int64, copy=False)
    return np.argsort((codes << 32) | ranks)


cdef inline bint _sorts_before(double ka, index_t la, double kb, index_t lb) noexcept nogil:
    # (ka, la) before (kb, lb) in ``_by_key_then_label``'s order: key
    # descending, NaN last (where np.unique puts -NaN), -0.0 equal to 0.0,
    # then label ascending.
    if ka != ka or kb != kb:
        if ka != ka and kb != kb:
            return la < lb
        return kb != kb
    if ka != kb:
        return ka > kb
    return la < lb


def _sorted_from(const double[::1] key, const index_t[::1] label, const index_t[::1] hint):
    """The positions of ``hint`` in ``_by_key_then_label``'s order (key
    descending, then label, labels distinct), found from ``hint``'s own
    order, most of which is that order already when a scan order is built
    again as the registry grows (its runs in key order, a run's words in
    id order though not always the ids within a word, the backends added
    beside no run at its end). One pass keeps a run of ``hint`` in that
    order (an entry that breaks it goes, or the one before it when that one
    is the odd one out); the rest are sorted (``_by_key_then_label``) and
    merged in. The order is total (labels are distinct), so the answer is
    the full sort's, at the cost of a linear pass and a sort of the rest: a
    tenth to a half of ``hint`` in a growing registry, all of it at worst."""
    cdef Py_ssize_t n = hint.shape[0], j, a = 0, b = 0, m = 0, r = 0
    cdef index_t p, last = -1
    kept_arr = np.empty(n, dtype=np.int64)
    rest_arr = np.empty(n, dtype=np.int64)
    cdef index_t[::1] kept = kept_arr, rest = rest_arr
    for j in range(n):
        p = hint[j]
        if last < 0 or _sorts_before(key[last], label[last], key[p], label[p]):
            kept[m] = p
            m += 1
        elif m >= 2 and _sorts_before(key[kept[m - 2]], label[kept[m - 2]], key[p], label[p]):
            # The last one kept is the one out of place (a backend placed in
            # its run's word, not at its place in the word): it goes, p stays.
            rest[r] = last
            r += 1
            kept[m - 1] = p
        else:
            rest[r] = p
            r += 1
            continue
        last = p
    rest_arr = rest_arr[:r]
    rest_arr = rest_arr[_by_key_then_label(np.asarray(key)[rest_arr], np.asarray(label)[rest_arr])]
    rest = rest_arr
    out_arr = np.empty(n, dtype=np.int64)
    cdef index_t[::1] out = out_arr
    for j in range(n):  # the merge
        if a == m or (b < r and _sorts_before(key[rest[b]], label[rest[b]], key[kept[a]], label[kept[a]])):
            out[j] = rest[b]
            b += 1
        else:
            out[j] = kept[a]
            a += 1
    return out_arr


cdef class CoreRegistry:
    """Raw pointers into the compiled columns, the live-state writers, and
    the hot path of preparing (``resolve``) and matching (``match``).

    ``general_prepare(slot)`` prepares any slot the API accepts, reporting
    every problem (the slow path ``resolve`` falls back on);
    ``reasons_of(match)`` builds a match's reasons. Both are passed in by the
    layer above, which owns them.
    """
    cdef Reg r
    cdef readonly object columns
    cdef dict _index
    cdef score_t* _cur_w           # observed usage (what update writes)
    cdef score_t* _cur_r
    cdef score_t* _storage_used
    cdef score_t* _ns_count
    cdef score_t* _res_w           # reserved
    cdef score_t* _res_r
    cdef score_t* _res_storage
    cdef score_t* _res_ns
    cdef score_t* _used_w          # observed + reserved: what the kernel reads
    cdef score_t* _used_r
    cdef score_t* _used_storage
    cdef score_t* _used_ns
    cdef score_t* _conn            # connections: observed, reserved, both (what the kernel reads)
    cdef score_t* _res_conn
    cdef score_t* _used_conn
    cdef score_t* _uptime
    cdef score_t* _avail_score
    cdef code_t* _health
    cdef object _general_prepare
    cdef object _reasons_of
    cdef SlotVocab _vocab
    cdef Py_ssize_t _vocab_version
    cdef Py_ssize_t _positions_version  # grows when ids move (add, remove): sticky slots find theirs again
    # What write_row reads, taken by refresh (no Python attribute per written row):
    cdef score_t* _cost_col        # cost_per_1k_writes
    cdef Py_ssize_t _entry_room    # the length of the latency entry columns
    cdef Py_ssize_t _row_room      # the length of the position columns (spare room included)
    cdef list _feature_tokens      # columns.features.tokens (a list only ever changed in place)
    # Slot mappings seen lately, by content (their msgpack encoding) -> PreparedSlot.
    cdef dict _slots
    cdef tuple _default_health
    cdef unsigned int _default_health_mask
    # Every change gets the next version; the log (a bounded deque, or None)
    # keeps the latest as (version, kind, backend_id, payload).
    cdef readonly Py_ssize_t version
    cdef public ChangeLog log      # None: no log kept
    cdef ScanOrder _scan           # None until order_by: then every top-k scans in its order
    cdef public CorePolicy policy  # the engine's (Engine.set_policy), read by the reservation book
    cdef list _ids                 # columns.backend_ids (a list only ever changed in place)
    # False: top-k scans every position in order, skipping nothing (the
    # benchmarks' "before", and a switch for the tests).
    cdef public bint use_scan_order

    def __init__(self, columns, general_prepare, reasons_of, log=None, Py_ssize_t version=0):
        self.columns = columns
        self._ids = columns.backend_ids
        self.log = log
        self.version = version
        self._index = None  # built on first use: a snapshot of 1M backends need not pay for it to match
        self._general_prepare = general_prepare
        self._reasons_of = reasons_of
        self._vocab_version = 0
        self._slots = {}
        self.use_scan_order = True
        self.refresh(True)
        _load_slot_codec()

    def refresh(self, bint vocabularies=False):
        """Take every pointer again (after an array of the columns was
        replaced, or the number of positions changed). ``vocabularies``: a
        name was added, so slots prepared before are prepared again on use."""
        c = self.columns
        s = c.store
        self.r.n = c.size
        self.r.nw = (c.size + 63) >> 6
        self.r.stride = s["feature_bits"].shape[1]
        self.r.wr = s["region_rows"].shape[1]
        self.r.wk = s["compliance_rows"].shape[1]
        self.r.alive = <const mask_t*>_ptr(s["alive"])
        self.r.feature_bits = <const mask_t*>_ptr(s["feature_bits"])
        self.r.region_rows = <const mask_t*>_ptr(s["region_rows"])
        self.r.compliance_rows = <const mask_t*>_ptr(s["compliance_rows"])
        self.r.btype = <const code_t*>_ptr(s["backend_type"])
        self.r.health = <const code_t*>_ptr(s["health"])
        self.r.consistency = <const code_t*>_ptr(s["consistency"])
        self.r.max_w = <const score_t*>_ptr(s["max_write_rps"])
        self.r.max_r = <const score_t*>_ptr(s["max_read_rps"])
        self.r.cur_w = <const score_t*>_ptr(s["used_write_rps"])
        self.r.cur_r = <const score_t*>_ptr(s["used_read_rps"])
        self.r.max_storage = <const score_t*>_ptr(s["max_storage"])
        self.r.storage_used = <const score_t*>_ptr(s["used_storage"])
        self.r.max_ns = <const score_t*>_ptr(s["max_namespaces"])
        self.r.ns_count = <const score_t*>_ptr(s["used_namespaces"])
        self.r.max_conn = <const score_t*>_ptr(s["max_connections"])
        self.r.cur_conn = <const score_t*>_ptr(s["used_connections"])
        self.r.cost_score = <const score_t*>_ptr(s["cost_score"])
        self.r.avail_score = <const score_t*>_ptr(s["avail_score"])
        self.r.id_rank = <const index_t*>_ptr(s["id_label"])
        self.r.lat_start = <const index_t*>_ptr(s["lat_start"])
        self.r.lat_stop = <const index_t*>_ptr(s["lat_stop"])
        self.r.lat_token = <const index_t*>_ptr(s["lat_token"])
        self.r.lat_vtoken = <const index_t*>_ptr(s["lat_vtoken"])
        self.r.lat_p99 = <const score_t*>_ptr(s["lat_p99_ms"])
        self.r.lat_p50 = <const score_t*>_ptr(s["lat_p50_ms"])
        self.r.lat_p95 = <const score_t*>_ptr(s["lat_p95_ms"])
        self.r.lat_p999 = <const score_t*>_ptr(s["lat_p999_ms"])
        self.r.lat_max_w = <const score_t*>_ptr(s["lat_max_write_rps"])
        self.r.lat_max_r = <const score_t*>_ptr(s["lat_max_read_rps"])
        self.r.lat_batch = <const signed char*>_ptr(s["lat_batch"])
        self.r.lat_max_batch = <const score_t*>_ptr(s["lat_max_batch_size"])
        self.r.lat_conc = <const score_t*>_ptr(s["lat_concurrency"])
        self.r.open_incidents = <const score_t*>_ptr(s["open_incidents"])
        self._cur_w = <score_t*>_ptr(s["write_rps"])
        self._cur_r = <score_t*>_ptr(s["read_rps"])
        self._storage_used = <score_t*>_ptr(s["storage_used"])
        self._ns_count = <score_t*>_ptr(s["namespace_count"])
        self._res_w = <score_t*>_ptr(s["reserved_write_rps"])
        self._res_r = <score_t*>_ptr(s["reserved_read_rps"])
        self._res_storage = <score_t*>_ptr(s["reserved_storage"])
        self._res_ns = <score_t*>_ptr(s["reserved_namespaces"])
        self._conn = <score_t*>_ptr(s["active_connections"])
        self._res_conn = <score_t*>_ptr(s["reserved_connections"])
        self._used_w = <score_t*>self.r.cur_w
        self._used_r = <score_t*>self.r.cur_r
        self._used_storage = <score_t*>self.r.storage_used
        self._used_ns = <score_t*>self.r.ns_count
        self._used_conn = <score_t*>self.r.cur_conn
        self._uptime = <score_t*>_ptr(s["uptime_percent_24h"])
        self._avail_score = <score_t*>self.r.avail_score
        self._health = <code_t*>self.r.health
        self._cost_col = <score_t*>_ptr(s["cost_per_1k_writes"])
        self._entry_room = len(s["lat_p99_ms"])
        self._row_room = len(s["id_label"])
        self._feature_tokens = c.features.tokens
        if self._scan is not None:
            self._scan.room(len(s["id_label"]) + self._scan.extra_slots, len(c.features), len(c.regions),
                            len(c.compliance))
        if vocabularies or self._vocab is None:
            self._vocab_version += 1
            self._vocab = SlotVocab(c, self._vocab_version)
            self._slots = {}

    def resize(self, Py_ssize_t size):
        """The number of positions changed, no array was replaced (an add
        into spare room): the cheap part of ``refresh``."""
        self.r.n = size
        self.r.nw = (size + 63) >> 6

    def order_by(self, double w_cost, double w_avail, Py_ssize_t block_words=0, bint force=False,
                 Py_ssize_t gap_every=-1):
        """Lay the backends out for the scan by ``w_cost * cost_score +
        w_avail * avail_score`` (best first, ties by backend_id order) and
        build its rows and bounds (see _order.pxi). Nothing is done when the
        order already follows these weights (only their ratio matters).
        ``block_words``: words per block (default 64; the tests use small
        blocks so that small registries have many). ``force``: build it
        again even so (``relayout``). ``gap_every``: one slot in so many
        is left free (SCAN_GAP_EVERY by default, then the order's own; 0:
        none, every run full, as the tests of cascades want)."""
        cdef ScanOrder scan
        cdef index_t w
        if block_words <= 0:
            block_words = self._scan.block_words if self._scan is not None else BLOCK_WORDS
        if gap_every < 0:
            gap_every = self._scan.gap_every if self._scan is not None else GAP_EVERY
        if not force and self._scan is not None and self._scan.block_words == block_words \
                and self._scan.gap_every == gap_every \
                and self._scan.w_cost * w_avail == self._scan.w_avail * w_cost \
                and (self._scan.w_cost > 0) == (w_cost > 0) and (self._scan.w_avail > 0) == (w_avail > 0):
            return
        _load_codes()
        c = self.columns
        s = c.store
        n = self.r.n
        scan = ScanOrder(w_cost, w_avail, block_words)
        if self._scan is not None:
            scan.cascade_runs = self._scan.cascade_runs
        scan.gap_every = gap_every
        slots = extra = 0
        if n:
            live = np.unpackbits(s["alive"][:self.r.nw].view(np.uint8), bitorder="little")[:n].astype(bool)
            positions = np.arange(n, dtype=np.int64)
            key = w_cost * s["cost_score"][:n] + w_avail * s["avail_score"][:n]
            first = None
            if self._scan is not None:  # built again: the old order is mostly this one already
                old = self._scan.arrays["perm"][:self._scan.n_slots]
                hint = old[(old >= 0) & (old < n)]
                hint = hint[live[hint]]
                if len(hint) == np.count_nonzero(live):  # every live position has its slot (else the full sort)
                    first = _sorted_from(key, s["id_label"][:n], hint)
            if first is None:
                first = positions[live][_by_key_then_label(key[live], s["id_label"][:n][live])]
            dead = positions[~live]
            # The live backends in order, the last slot of every
            # ``gap_every`` left free (one a word by default): an add then
            # finds a free slot in the run of its key, in the word where
            # its id falls, and moves nothing. Dead positions take those
            # gaps first, then go last with the lowest key; gaps left over
            # have no position (perm -1).
            at = np.arange(len(first), dtype=np.int64)
            live_slots = at + at // (gap_every - 1) if gap_every > 1 else at
            span = int(live_slots[len(live_slots) - 1]) + 1 if len(first) else 0  # (no wraparound here)
            gaps = np.arange(gap_every - 1, span, gap_every, dtype=np.int64) if gap_every > 1 else at[:0]
            filled = min(len(dead), len(gaps))
            tail = np.arange(span, span + len(dead) - filled, dtype=np.int64)
            slots = span + len(tail)
            extra = len(gaps) - filled
        scan.room(len(s["id_label"]) + extra, len(c.features), len(c.regions), len(c.compliance))
        if n:
            a = scan.arrays
            a["perm"][live_slots] = first
            a["perm"][gaps[:filled]] = dead[:filled]
            a["perm"][tail] = dead[filled:]
            taken = a["perm"][:slots]
            a["slot_of"][taken[taken >= 0]] = np.flatnonzero(taken >= 0)
            a["skey"][live_slots] = key[first]
            a["skey"][gaps] = a["skey"][gaps - 1]  # a gap is part of the run before it
        scan.set_slots(slots)
        scan.built_slots = slots
        scan.extra_slots = extra
        # The rows from the columns and the order put in place with the GIL
        # held throughout: an update (which writes into the order in place)
        # lands wholly before or wholly after (a relayout runs while
        # matches and updates go on).
        _build_rows(&self.r, &scan.o, scan.slot_of, scan.n_features)
        for w in range(scan.o.nw):
            scan.note_free(w)
        self._scan = scan

    cdef int _relayout_if_misplaced(self) except -1:
        # LayoutCore.add, after an add: once more than a sixteenth of the positions
        # (and RELAYOUT_MIN) were added beside no run of their key (a
        # registry that grows with no hole to fill: the order's tail then
        # mixes keys, and its bounds prune nothing), the order is built
        # again, sorted (from the old order: ``_sorted_from``). A pause
        # each time the registry has grown by a sixteenth (9 ms at 100,000
        # backends, 150 ms at 1,000,000): amortized about 1.5 µs per such
        # add; a registry with holes to fill never pays it.
        cdef ScanOrder scan = self._scan
        if scan is not None and scan.misplaced > RELAYOUT_MIN and scan.misplaced > self.r.n // 16:
            self.order_by(scan.w_cost, scan.w_avail, scan.block_words, True)
        return 0

    @property
    def scan_order(self):
        """The ScanOrder (None before ``order_by``)."""
        return self._scan

    cdef inline index_t _best(self, const Slot* s, const Policy* p, const Placed* pl, index_t k,
                              score_t* hs, index_t* hr, index_t* hi) noexcept nogil:
        if self._scan is not None and self.use_scan_order:
            return topk_ordered(&self.r, &self._scan.o, s, p, pl, k, hs, hr, hi)
        return topk_scores(&self.r, s, p, pl, k, hs, hr, hi)

    @property
    def index(self):
        """backend_id → position."""
        return self._the_index()

    cdef inline dict _the_index(self):
        # ``index`` without a Python call: made on first use.
        if self._index is None:
            ids = self.columns.backend_ids
            self._index = {b: i for i, b in enumerate(ids) if b is not None}
        return self._index

    @property
    def vocab_version(self):
        return self._vocab_version

    @property
    def positions_version(self):
        """Grows when an id takes or leaves a position (see ``positions_moved``)."""
        return self._positions_version

    def set_default_health(self, tuple statuses):
        """The statuses a slot that names none accepts (the policy's). When
        they change, slots prepared before are forgotten: they baked the old
        ones in. The same statuses again keep the slots and the cache."""
        if statuses == self._default_health:
            return
        self._default_health_mask = _code_mask(self._vocab.health_code, statuses, "health_statuses")
        self._default_health = statuses
        self._slots = {}

    @property
    def cached_slots(self):
        """How many slot mappings are remembered now (at most 256)."""
        return len(self._slots)

    def prepare_requirement(self, requirement):
        """A validated SlotRequirement, prepared under the current default statuses."""
        return prepare_slot(self._vocab, self.columns, requirement, self._default_health,
                            self._default_health_mask, self, self._positions_version)

    cdef inline bint _current(self, PreparedSlot ps):
        return ps.columns is self.columns and ps.vocab_version == self._vocab_version and (
            ps.default_health is self._default_health or ps.requirement.health_statuses is not None) and (
            not ps.sticky or ps.positions_version == self._positions_version)

    cpdef PreparedSlot resolve(self, object slot, bint cache=True):
        """Any slot the API accepts -> a PreparedSlot for this registry.

        The hot cases stay here, in C: a slot prepared for this registry
        under the current statuses and vocabularies is returned as is, and a
        plain dict is encoded once (msgpack): the bytes are the cache key
        (``cache``), and the input of a prebuilt typed decoder. Anything
        else, and a dict that does not decode, goes to the general path,
        which reports every problem with its path.
        """
        cdef PreparedSlot ps
        cdef bytes key
        if type(slot) is PreparedSlot:
            ps = <PreparedSlot>slot
            if self._current(ps):
                return ps  # what it baked in is still what holds
            return self._general_prepare(slot)
        if type(slot) is not dict:
            return self._general_prepare(slot)
        try:
            key = _encode_slot(slot)
        except (TypeError, ValueError, OverflowError, RecursionError):
            return self._general_prepare(slot)
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
            ps = prepare_slot(self._vocab, self.columns, requirement, self._default_health,
                              self._default_health_mask, self, self._positions_version)
        else:
            ps = self._general_prepare(slot)
        if cache and not ps.sticky:  # a sticky slot holds a position, which an add or remove may move
            # Bounded by clearing: keeping an eviction order costs more per
            # miss than the cache saves (the evicted slot is cold in memory).
            if len(self._slots) >= _SLOT_CACHE:
                self._slots = {}
            self._slots[key] = ps
        return ps

    def match(self, slot, CorePolicy policy, Py_ssize_t k):
        """``topk`` of any slot the API accepts."""
        return self._topk(self.resolve(slot), policy, k)

    def topk(self, PreparedSlot slot, CorePolicy policy, Py_ssize_t k):
        """Best ``k`` matches (list of Match), best first."""
        return self._topk(slot, policy, k)

    cdef Match _match(self, PreparedSlot slot, CorePolicy policy, const Placed* pl, index_t i, score_t score):
        cdef score_t perf, region, aw, ar
        cdef Match m
        _components(&self.r, &slot.s, &policy.p, pl, i, &perf, &region, &aw, &ar)
        m = Match.__new__(Match)
        m.backend_id = self._ids[i]
        m.index = i
        m.score = score
        m.performance = perf
        m.cost = self.r.cost_score[i]
        m.availability = self.r.avail_score[i]
        m.region = region
        m.affinity = _affinity(&self.r, &slot.s, i) if slot.s.n_aff > 0 else 0.0
        m.available_write_rps = aw
        m.available_read_rps = ar
        m.slot = slot
        m._reasons_of = self._reasons_of
        return m

    cdef list _topk(self, PreparedSlot slot, CorePolicy policy, Py_ssize_t k):
        cdef index_t kk = min(k, self.r.n)
        cdef index_t j, size
        cdef score_t hs_small[16]
        cdef index_t hr_small[16]
        cdef index_t hi_small[16]
        cdef score_t* hs = hs_small
        cdef index_t* hr = hr_small
        cdef index_t* hi = hi_small
        cdef object bufs = None
        cdef list out = []
        if kk <= 0:
            return out
        if kk > 16:
            bufs = (np.empty(kk, dtype=np.float64), np.empty(kk, dtype=np.int64), np.empty(kk, dtype=np.int64))
            hs = <score_t*>_ptr(bufs[0]); hr = <index_t*>_ptr(bufs[1]); hi = <index_t*>_ptr(bufs[2])
        size = self._best(&slot.s, &policy.p, NULL, kk, hs, hr, hi)
        for j in range(size):
            out.append(self._match(slot, policy, NULL, hi[j], hs[j]))
        return out

    def failure_bits(self, PreparedSlot slot, CorePolicy policy):
        """``(bits, counts, eligible)``: uint32[n] failed-rule bits of every
        position (0 for holes and eligible backends), int64[N_RULES] backends
        per rule bit, and the number of eligible live backends. One pass
        (explain, check_binding), holding the GIL so that a change made from
        another thread lands wholly before or after it."""
        return _failure_bits(&self.r, slot, policy, None, None, None, True)  # live

    def match_at(self, PreparedSlot slot, CorePolicy policy, Py_ssize_t i):
        """The Match of the backend at position ``i`` (scored as ``match``
        scores it; eligibility is the caller's)."""
        cdef score_t perf, region, aw, ar
        if not 0 <= i < self.r.n:
            raise IndexError(i)
        _components(&self.r, &slot.s, &policy.p, NULL, i, &perf, &region, &aw, &ar)
        return self._match(slot, policy, NULL, i, _score(&self.r, &slot.s, &policy.p, i, perf, region))

    def failed_at(self, PreparedSlot slot, CorePolicy policy, Py_ssize_t i):
        """The failed-rule bits of the backend at position ``i`` alone
        (check_binding: what one bound backend lacks)."""
        if not 0 <= i < self.r.n:
            raise IndexError(i)
        return _backend_failures(&self.r, &slot.s, &policy.p, NULL, i)

    # --- live state ----------------------------------------------------------------------

    cdef inline void _resum(self, Py_ssize_t i) noexcept:
        # Usage as the rules read it: observed + reserved, in this order on
        # every path (the reference computes the same sum).
        self._used_w[i] = self._cur_w[i] + self._res_w[i]
        self._used_r[i] = self._cur_r[i] + self._res_r[i]
        self._used_storage[i] = self._storage_used[i] + self._res_storage[i]
        self._used_ns[i] = self._ns_count[i] + self._res_ns[i]
        self._used_conn[i] = self._conn[i] + self._res_conn[i]
        if self._scan is not None and _bit(self.r.alive, i):
            self._scan.set_ns_room(&self.r, i)

    def position(self, backend_id, str where):
        """The position of a live backend, or a RegistryError naming it."""
        cdef dict index = self._the_index()
        cdef object pos = index.get(backend_id) if type(backend_id) is str else None
        if pos is None:
            if not isinstance(backend_id, str):
                raise _error(f"Expected a backend_id (`str`), got `{type(backend_id).__name__}`", where)
            pos = index.get(backend_id)  # a str subclass
            if pos is None:
                raise _error(f"Unknown backend `{backend_id[:60]}`", where)
        return pos

    def update(self, backend_id, *, write_rps=None, read_rps=None, storage_used=None,
               namespace_count=None, status=None, uptime=None, active_connections=None):
        """Change one backend's observed live state in place (constant time).

        All arguments are checked before anything is written, and the writes
        happen without releasing the GIL, so a concurrent single match sees
        the backend wholly before or wholly after the update. The change
        gets the next version and goes into the log.
        """
        cdef Py_ssize_t i = self.position(backend_id, "update")
        cdef double w, r, st, ns, up, cn
        cdef int code = -1
        w = _live_number("write_rps", write_rps)
        r = _live_number("read_rps", read_rps)
        st = _live_number("storage_used", storage_used)
        ns = _live_number("namespace_count", namespace_count)
        up = _live_number("uptime", uptime)
        cn = _live_number("active_connections", active_connections)
        if up == up and up > 100:
            raise _error(f"Expected a percentage in [0, 100], got `{uptime}`", "update uptime")
        if status is not None:
            code = self._vocab.health_code.get(status, -1) if isinstance(status, str) else -1
            if code < 0:
                raise _error(f"Expected one of {', '.join('`%s`' % s for s in self._vocab.health_code)}, "
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
            if self._scan is not None:
                self._scan.raise_bounds(&self.r, i)
        if cn == cn:
            self._conn[i] = cn
        if code >= 0:
            if self._scan is not None:
                self._scan.set_health(i, self._health[i], <code_t>code)
            self._health[i] = <code_t>code
        self._resum(i)
        self.version += 1
        if self.log is not None:
            # The values as given (NaN / -1: not given); ``update_fields``
            # turns them into keyword arguments when the log is read.
            self.log.push(self.version, "update", self._ids[i], (w, r, st, ns, code, up, cn))

    def record(self, str kind, backend_id, payload):
        """A change made above the core (add, remove, replace, reserve,
        release, health): its version, logged like an update's."""
        return self._logged(kind, backend_id, payload)

    def add_usage(self, score_t[::1] write_rps, score_t[::1] read_rps, score_t[::1] storage_used,
                  score_t[::1] namespace_count, score_t[::1] connections=None):
        """Add placed usage to the observed columns (``assign(commit=True)``),
        in one loop that keeps the GIL, so single matches see all of it or none."""
        cdef Py_ssize_t i
        for i in range(self.r.n):
            self._cur_w[i] += write_rps[i]
            self._cur_r[i] += read_rps[i]
            self._storage_used[i] += storage_used[i]
            self._ns_count[i] += namespace_count[i]
            if connections is not None:
                self._conn[i] += connections[i]
            self._resum(i)

    def reserve(self, PreparedSlot slot, CorePolicy policy, Py_ssize_t at=-1, group=None):
        """Take one placement: the best eligible backend under what is left
        (one step of assign: headroom rules and the namespace limit), or the
        backend at position ``at``. Choosing and taking happen without a
        Python call in between (the GIL is held), so two threads can never
        both take the last of a backend.

        ``group``: ``(per_backend, per_region)`` placements of the slot's
        group so far (float64[n], float64[wr * 64]), for its group rules.

        Returns ``(match, 0)`` when taken, ``(None, failed bits)`` when the
        named backend fails rules, ``(None, 0)`` when nothing fits.
        """
        cdef Placed pl
        cdef score_t hs
        cdef index_t hr, hi, size
        cdef rules_t failed
        cdef score_t perf, region, aw, ar
        cdef score_t[::1] gb, gr
        memset(&pl, 0, sizeof(Placed))
        if group is not None:
            gb, gr = group
            _set_group(&self.r, &slot.s, &policy.p, &pl, &gb[0], &gr[0])
        if at >= 0:
            failed = _backend_failures(&self.r, &slot.s, &policy.p, &pl, at)
            if failed:
                return None, failed
            _components(&self.r, &slot.s, &policy.p, &pl, at, &perf, &region, &aw, &ar)
            hi = at
            hs = _score(&self.r, &slot.s, &policy.p, at, perf, region)
        else:
            size = self._best(&slot.s, &policy.p, &pl, 1, &hs, &hr, &hi)
            if not size:
                return None, 0
        m = self._match(slot, policy, &pl, hi, hs)
        self._take(&slot.s, hi)
        return m, 0

    cdef inline void _take(self, const Slot* s, index_t i) noexcept:
        # What one placement of ``s`` consumes, reserved on position ``i``.
        self._res_w[i] += s.min_w
        self._res_r[i] += s.min_r
        self._res_storage[i] += s.min_storage
        self._res_ns[i] += 1
        self._res_conn[i] += s.min_conn
        self._resum(i)

    cdef inline void _give_back(self, Py_ssize_t i, double w, double r, double storage, double ns, bint last,
                                double conn) noexcept:
        # What a reservation took from position ``i``, given back (the
        # reservation book's release); ``last``: it was the backend's last
        # reservation, so what is reserved returns to exactly zero (no
        # rounding left over).
        if last:
            self._res_w[i] = 0.0
            self._res_r[i] = 0.0
            self._res_storage[i] = 0.0
            self._res_ns[i] = 0.0
            self._res_conn[i] = 0.0
        else:
            self._res_w[i] = max(self._res_w[i] - w, 0.0)
            self._res_r[i] = max(self._res_r[i] - r, 0.0)
            self._res_storage[i] = max(self._res_storage[i] - storage, 0.0)
            self._res_ns[i] = max(self._res_ns[i] - ns, 0.0)
            self._res_conn[i] = max(self._res_conn[i] - conn, 0.0)
        self._resum(i)

    cdef inline void _log_ready(self) noexcept:
        # ``ChangeLog.ready``: at the start of a change that will be logged.
        if self.log is not None:
            self.log.ready()

    cdef inline Py_ssize_t _logged(self, str kind, object backend_id, object payload) except -1:
        # ``record`` without a Python call.
        self.version += 1
        if self.log is not None:
            self.log.push(self.version, kind, backend_id, payload)
        return self.version

    cdef inline Py_ssize_t _logged_record(self, str kind, object backend_id, const char* data,
                                          Py_ssize_t n) except -1:
        # ``_logged`` of a change whose payload is a record (``n`` bytes at
        # ``data``): the log keeps a copy (``ChangeLog.push_record``).
        self.version += 1
        if self.log is not None:
            self.log.push_record(self.version, kind, backend_id, data, n)
        return self.version

    def hold(self, Py_ssize_t i, double w, double r, double storage, double ns, double conn=0.0):
        """Reserve fixed amounts on position ``i`` (a replayed reservation)."""
        self._res_w[i] += w
        self._res_r[i] += r
        self._res_storage[i] += storage
        self._res_ns[i] += ns
        self._res_conn[i] += conn
        self._resum(i)

    def recompute_usage(self, Py_ssize_t i):
        """Usage of position ``i`` from its observed and reserved columns,
        after its row was written (add, replace): a live backend's row is
        taken into the scan order again (a replace)."""
        self._recompute_usage(i)

    cdef inline void _recompute_usage(self, Py_ssize_t i) noexcept:
        # recompute_usage without a Python call (write_row's last step).
        self._resum(i)
        if self._scan is not None and _bit(self.r.alive, i):
            self._scan.write(&self.r, i)

    def set_alive(self, Py_ssize_t i, bint alive):
        """Mark position ``i`` as holding a backend (its row written), or as a hole."""
        self._set_alive(i, alive)

    cdef inline void _prefetch_position(self, Py_ssize_t i) noexcept:
        # Ask for what ``_set_alive(i, False)`` reads (LayoutCore.remove).
        pm_prefetch(self.r.id_rank + i)
        if self._scan is not None:
            pm_prefetch(self._scan.slot_of + i)

    cdef inline void _set_alive(self, Py_ssize_t i, bint alive) noexcept:
        # set_alive without a Python call (LayoutCore.add and remove, per backend).
        cdef mask_t* words = <mask_t*>self.r.alive
        if alive:
            words[i >> 6] |= (<mask_t>1) << (i & 63)
            if self._scan is not None:
                self._scan.put(&self.r, i)
        else:
            words[i >> 6] &= ~((<mask_t>1) << (i & 63))
            if self._scan is not None:
                self._scan.drop(&self.r, i)

    cpdef label_written(self, Py_ssize_t i):
        """Position ``i``'s order label changed (ids spread out around an
        added one): the scan order's rank of its slot, and the least ranks
        of its word and block."""
        if self._scan is not None and 0 <= i < self.r.n:
            self._scan.relabel(&self.r, i)

    def forget_index(self):
        """Positions changed (add/remove/replace): rebuild the id index on next use."""
        self._index = None

    def positions_moved(self):
        """An id took or left a position (add, remove): prepared slots that
        name a current backend look it up again on their next use."""
        self._positions_version += 1

    @property
    def index_or_none(self):
        return self._index


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
    # Lazily: the schema module is imported after this one.
    global _encode_slot, _decode_slot, _ValidationError
    if _decode_slot is None:
        import msgspec
        from .schema import SlotRequirement, decode_hook
        _encode_slot = msgspec.msgpack.Encoder().encode
        _decode_slot = msgspec.msgpack.Decoder(SlotRequirement, dec_hook=decode_hook).decode
        _ValidationError = msgspec.ValidationError


_HEALTH_NAMES = None


def update_fields(tuple values):
    """An update's logged values → the keyword arguments that replay it."""
    global _HEALTH_NAMES
    if _HEALTH_NAMES is None:
        from .schema import HEALTH_STATUSES
        _HEALTH_NAMES = HEALTH_STATUSES
    w, r, st, ns, code, up, *rest = values
    cn = rest[0] if rest else float("nan")
    out = {}
    for name, value in (("write_rps", w), ("read_rps", r), ("storage_used", st), ("namespace_count", ns),
                        ("uptime", up), ("active_connections", cn)):
        if value == value:
            out[name] = value
    if code >= 0:
        out["status"] = _HEALTH_NAMES[code]
    return out


def _error(message, location):
    from .errors import RegistryError
    return RegistryError(message, location)


cdef int _set_group(const Reg* r, const Slot* s, const Policy* p, Placed* pl, const score_t* grp_backend,
                    const score_t* grp_region) except -1:
    """Point ``pl`` at a group's placement counts; the skew rule's domain
    minimum is computed now (one pass), when the slot bounds the skew."""
    cdef mask_t* scratch
    pl.grp_backend = grp_backend
    pl.grp_region = grp_region
    pl.domain_min = 0.0
    if s.max_skew < INFINITY:
        scratch = <mask_t*>PyMem_Malloc(max(r.wr, 1) * sizeof(mask_t))
        if scratch == NULL:
            raise MemoryError()
        with nogil:
            pl.domain_min = domain_min(r, s, p, pl, scratch)
        PyMem_Free(scratch)
    return 0


include "_records.pxi"
include "_living.pxi"
include "_reserve.pxi"
include "_edits.pxi"
include "_batch.pxi"
