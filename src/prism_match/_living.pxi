# A registration as a row of the columns, and that row written into one
# position in a single call: what ``living.Layout`` does per added or
# replaced backend, and what ``compiled.compile_registry`` reads per loaded
# one. Included by _core.pyx after CoreRegistry (these functions read its C
# fields). The plain twin of ``Row`` is ``plain_row`` in
# tests/test_living_rows.py; ``IdOrder`` (below) is held to sorted ids there.
#
# Holding the GIL throughout and calling no user code, ``write_row`` changes
# a position wholly between two Python bytecodes: a single match sees the
# row before or after, never half of it.

cdef enum:
    _N_INPUT = 12    # len(compiled.INPUT_FLOATS)

# What Row reads from compiled, schema and vocabulary, taken on first use
# (compiled imports this module).
cdef bint _tables_loaded = False
cdef double _MISSING_INPUT[_N_INPUT]      # compiled.MISSING, INPUT_FLOATS order
cdef dict _TYPE_CODE, _HEALTH_CODE, _CONSISTENCY_CODE
cdef int _UNKNOWN_CONSISTENCY_CODE
cdef str _DEFAULT_VERSION, _VERSION_SEP


cdef int _load_row_tables() except -1:
    global _tables_loaded, _TYPE_CODE, _HEALTH_CODE, _CONSISTENCY_CODE, _UNKNOWN_CONSISTENCY_CODE
    global _DEFAULT_VERSION, _VERSION_SEP
    cdef Py_ssize_t j
    from . import schema
    from .compiled import CONSISTENCY_CODE, HEALTH_CODE, INPUT_FLOATS, MISSING, TYPE_CODE, UNKNOWN_CONSISTENCY
    from .schema import DEFAULT_VERSION
    from .vocabulary import VERSION_SEP
    _load_fields(schema)
    if len(INPUT_FLOATS) != _N_INPUT:
        raise RuntimeError("compiled.INPUT_FLOATS and _living.pxi disagree")
    for j in range(_N_INPUT):
        _MISSING_INPUT[j] = MISSING[INPUT_FLOATS[j]]
    _TYPE_CODE, _HEALTH_CODE, _CONSISTENCY_CODE = TYPE_CODE, HEALTH_CODE, CONSISTENCY_CODE
    _UNKNOWN_CONSISTENCY_CODE = UNKNOWN_CONSISTENCY
    _DEFAULT_VERSION, _VERSION_SEP = DEFAULT_VERSION, VERSION_SEP
    _tables_loaded = True
    return 0


# --- reading a Registration's fields at their slots -----------------------------------
#
# A msgspec Struct keeps its fields in slots, read through member
# descriptors: an attribute lookup (the type's dictionary, the descriptor,
# its getter) costs some 140 instructions, and Row reads about thirty. For
# the exact schema classes Row reads the slot at the descriptor's offset,
# as the descriptor's getter would; any other object (a subclass, a stand-in)
# goes through getattr.

from cpython.object cimport PyObject, PyTypeObject

cdef extern from "Python.h":
    ctypedef struct PyMemberDef:
        Py_ssize_t offset
    ctypedef struct PyMemberDescrObject:
        PyMemberDef* d_member

cdef enum _F:
    F_BACKEND_TYPE, F_CAPABILITIES, F_INTERFACES, F_REGIONS, F_COMPLIANCE, F_CONSISTENCY
    F_CAPACITY, F_CURRENT, F_COST, F_HEALTH, F_RECENT_INCIDENTS
    F_MAX_WRITE_RPS, F_MAX_READ_RPS, F_MAX_STORAGE, F_MAX_NAMESPACES, F_MAX_CONNECTIONS
    F_WRITE_RPS, F_READ_RPS, F_STORAGE_USED, F_NAMESPACE_COUNT, F_ACTIVE_CONNECTIONS
    F_COST_PER_1K_WRITES, F_STATUS, F_UPTIME, F_HEALTH_INCIDENTS
    F_CAP_NAME, F_CAP_VERSION, F_CAP_PERFORMANCE, F_PERF_LATENCY, F_P99_MS
    F_IFC_NAME, F_IFC_VERSION, F_RESOLVED_AT
    F_P50_MS, F_P95_MS, F_P999_MS, F_PERF_MAX_WRITE, F_PERF_MAX_READ
    F_PERF_BATCH, F_PERF_BATCH_SIZE, F_PERF_CONCURRENCY, F_CAP_BATCH, F_CAP_BATCH_SIZE, F_CAP_CONCURRENCY
    F_BACKEND_ID
    _N_FIELDS

# (schema class, field) of each _F, in order.
_FIELD_SPECS = (
    ("Registration", "backend_type"), ("Registration", "capabilities"), ("Registration", "interfaces"),
    ("Registration", "regions"), ("Registration", "compliance"), ("Registration", "consistency"),
    ("Registration", "capacity"), ("Registration", "current"), ("Registration", "cost"),
    ("Registration", "health"), ("Registration", "recent_incidents"),
    ("Capacity", "max_write_rps"), ("Capacity", "max_read_rps"), ("Capacity", "max_storage"),
    ("Capacity", "max_namespaces"), ("Capacity", "max_connections"),
    ("Current", "write_rps"), ("Current", "read_rps"), ("Current", "storage_used"),
    ("Current", "namespace_count"), ("Current", "active_connections"),
    ("Cost", "cost_per_1k_writes"), ("Health", "status"), ("Health", "uptime_percent_24h"),
    ("Health", "recent_incidents"),
    ("Capability", "name"), ("Capability", "version"), ("Capability", "performance"),
    ("CapabilityPerformance", "latency"), ("Latency", "p99_ms"),
    ("Interface", "name"), ("Interface", "version"), ("Incident", "resolved_at"),
    ("Latency", "p50_ms"), ("Latency", "p95_ms"), ("Latency", "p999_ms"),
    ("CapabilityPerformance", "max_write_rps"), ("CapabilityPerformance", "max_read_rps"),
    ("CapabilityPerformance", "supports_batch"), ("CapabilityPerformance", "max_batch_size"),
    ("CapabilityPerformance", "max_concurrent_operations"),
    ("Capability", "supports_batch"), ("Capability", "max_batch_size"), ("Capability", "max_concurrent_operations"),
    ("Registration", "backend_id"),
)
cdef PyObject* _FIELD_OWNER[_N_FIELDS]     # the class (kept alive by _FIELD_KEEP)
cdef Py_ssize_t _FIELD_OFFSET[_N_FIELDS]
cdef tuple _FIELD_NAME = ()
cdef list _FIELD_KEEP = []


cdef int _load_fields(schema) except -1:
    global _FIELD_NAME
    cdef Py_ssize_t f
    member_descriptor = type(schema.Registration.__dict__["backend_id"])
    if len(_FIELD_SPECS) != _N_FIELDS:
        raise RuntimeError("_FIELD_SPECS and the _F enum disagree")
    for f in range(_N_FIELDS):
        owner_name, name = _FIELD_SPECS[f]
        owner = getattr(schema, owner_name)
        descr = owner.__dict__.get(name)
        if type(descr) is not member_descriptor:
            raise RuntimeError(f"{owner_name}.{name} is not a slot")
        _FIELD_KEEP.append(owner)
        _FIELD_OWNER[f] = <PyObject*>owner
        _FIELD_OFFSET[f] = (<PyMemberDescrObject*><PyObject*>descr).d_member.offset
    _FIELD_NAME = tuple(name for _, name in _FIELD_SPECS)
    return 0


cdef inline object _get(object obj, int f):
    # ``getattr(obj, name of f)``: the slot itself when obj's class is the field's.
    cdef PyObject* value
    if (<PyObject*>obj).ob_type == <PyTypeObject*>_FIELD_OWNER[f]:
        value = (<PyObject**>((<char*><PyObject*>obj) + _FIELD_OFFSET[f]))[0]
        if value != NULL:
            return <object>value
    return getattr(obj, <str>_FIELD_NAME[f])


cdef inline Py_ssize_t _token_bit(dict index, list tokens, str token) except -1:
    # Vocabulary.add, on its public state (``index``: token -> bit, ``tokens``
    # in bit order), without a Python call per name.
    found = index.get(token)
    if found is not None:
        return <Py_ssize_t>found
    cdef Py_ssize_t bit = len(tokens)
    index[token] = bit
    tokens.append(token)
    return bit


cdef inline double _stated(object value) except? -1.0:
    return NAN if value is None else <double>value


cdef object _capability_entry(object cap, tuple bits):
    # Capability.performance_entry, read in place, with the tokens in front:
    # None when the capability states nothing per-capability.
    cdef object perf = _get(cap, F_CAP_PERFORMANCE)
    cdef object lat = None, batch = None, size = None, conc = None
    cdef object p99 = None, p50 = None, p95 = None, p999 = None, mw = None, mr = None
    if perf is not None:
        lat = _get(perf, F_PERF_LATENCY)
        if lat is not None:
            p99, p50, p95, p999 = _get(lat, F_P99_MS), _get(lat, F_P50_MS), _get(lat, F_P95_MS), _get(lat, F_P999_MS)
        mw, mr = _get(perf, F_PERF_MAX_WRITE), _get(perf, F_PERF_MAX_READ)
        batch, size, conc = _get(perf, F_PERF_BATCH), _get(perf, F_PERF_BATCH_SIZE), _get(perf, F_PERF_CONCURRENCY)
    # G2: beside ``performance`` when not inside it.
    if batch is None:
        batch = _get(cap, F_CAP_BATCH)
    if size is None:
        size = _get(cap, F_CAP_BATCH_SIZE)
    if conc is None:
        conc = _get(cap, F_CAP_CONCURRENCY)
    if p99 is None and p50 is None and p95 is None and p999 is None and mw is None and mr is None \
            and batch is None and size is None and conc is None:
        return None
    return (bits[0], bits[1], _stated(p99), _stated(p50), _stated(p95), _stated(p999), _stated(mw), _stated(mr),
            -1 if batch is None else (1 if batch else 0), _stated(size), _stated(conc))


cdef inline double _given(object value, Py_ssize_t j) except? -1.0:
    return _MISSING_INPUT[j] if value is None else <double>value


# TokenMemo, Row and IdOrder hold only ints, strings and containers of
# them, so no cycle can pass through one: the cyclic GC need not track them.
@cython.final
@cython.no_gc
cdef class TokenMemo:
    """The feature bits of names already seen by ``Row``: ``(bare, versioned)``
    per capability or interface name (the name alone for the default
    version, else ``(name, version)``). Valid while its vocabulary only
    grows: one that is cut back (``Vocabulary.truncate``) needs a new memo."""

    cdef dict caps, ifcs

    def __init__(self):
        self.caps = {}
        self.ifcs = {}

    def __len__(self):
        return len(self.caps) + len(self.ifcs)


cdef inline tuple _feature_bits(dict memo, dict index, list tokens, str prefix, str name, str version):
    key = name if version is _DEFAULT_VERSION or version == _DEFAULT_VERSION else (name, version)
    found = memo.get(key) if memo is not None else None
    if found is None:
        bare = prefix + name
        found = (_token_bit(index, tokens, bare), _token_bit(index, tokens, bare + _VERSION_SEP + version))
        if memo is not None:
            memo[key] = found
    return <tuple>found


@cython.final
@cython.no_gc
cdef class Row:
    """One registration as the columns hold it: the input floats
    (``floats``, compiled.INPUT_FLOATS order, missing values as
    compiled.MISSING says), the codes, the feature tokens it declares (bare
    and versioned per name, in declaration order), its region and
    compliance bits, and its latency entries: one per capability that
    states any per-capability performance, ``(bare token, versioned token,
    p99, p50, p95, p999 ms, max_write_rps, max_read_rps, supports_batch,
    max_batch_size, max_concurrent_operations)`` as ``_capability_entry``
    makes it (``schema.Capability.performance_entry``'s reading). Names new
    to a vocabulary are added to it; ``memo`` (a TokenMemo of ``features``)
    skips building the tokens of names seen before."""

    cdef double f[_N_INPUT]
    cdef readonly int backend_type, health, consistency
    cdef readonly double open_incidents   # incidents without resolved_at (compiled.open_incidents)
    cdef readonly list tokens, regions, compliance, latency

    def __init__(self, reg, features, regions, compliance, TokenMemo memo=None):
        self.read(reg, features.index, features.tokens, regions.index, regions.tokens, compliance.index,
                  compliance.tokens, memo)

    cdef int read(self, reg, dict f_index, list f_tokens, dict r_index, list r_tokens, dict c_index,
                  list c_tokens, TokenMemo memo) except -1:
        # __init__'s work on the vocabularies' public state (``index``: token
        # -> bit, ``tokens``), which LayoutCore.add takes once per call.
        cdef dict caps_memo = memo.caps if memo is not None else None
        cdef dict ifcs_memo = memo.ifcs if memo is not None else None
        cdef list tokens = [], latency = []
        cdef tuple bits
        cdef Py_ssize_t j
        if not _tables_loaded:
            _load_row_tables()
        for cap in _get(reg, F_CAPABILITIES):
            if isinstance(cap, str):
                bits = _feature_bits(caps_memo, f_index, f_tokens, "c:", cap, _DEFAULT_VERSION)
            else:
                bits = _feature_bits(caps_memo, f_index, f_tokens, "c:", _get(cap, F_CAP_NAME),
                                     _get(cap, F_CAP_VERSION))
                entry = _capability_entry(cap, bits)
                if entry is not None:
                    latency.append(entry)
            tokens.append(bits[0])
            tokens.append(bits[1])
        for ifc in _get(reg, F_INTERFACES):
            if isinstance(ifc, str):
                bits = _feature_bits(ifcs_memo, f_index, f_tokens, "i:", ifc, _DEFAULT_VERSION)
            else:
                bits = _feature_bits(ifcs_memo, f_index, f_tokens, "i:", _get(ifc, F_IFC_NAME),
                                     _get(ifc, F_IFC_VERSION))
            tokens.append(bits[0])
            tokens.append(bits[1])
        self.tokens = tokens
        self.latency = latency
        self.regions = [_token_bit(r_index, r_tokens, region) for region in _get(reg, F_REGIONS)]
        self.compliance = [_token_bit(c_index, c_tokens, tag) for tag in _get(reg, F_COMPLIANCE)]
        cap_, cur, cost, hl = _get(reg, F_CAPACITY), _get(reg, F_CURRENT), _get(reg, F_COST), _get(reg, F_HEALTH)
        if cap_ is not None:
            self.f[0] = _given(_get(cap_, F_MAX_WRITE_RPS), 0)
            self.f[1] = _given(_get(cap_, F_MAX_READ_RPS), 1)
            self.f[4] = _given(_get(cap_, F_MAX_STORAGE), 4)
            self.f[6] = _given(_get(cap_, F_MAX_NAMESPACES), 6)
            self.f[8] = _given(_get(cap_, F_MAX_CONNECTIONS), 8)
        else:
            for j in (0, 1, 4, 6, 8):
                self.f[j] = _MISSING_INPUT[j]
        if cur is not None:
            self.f[2] = _given(_get(cur, F_WRITE_RPS), 2)
            self.f[3] = _given(_get(cur, F_READ_RPS), 3)
            self.f[5] = _given(_get(cur, F_STORAGE_USED), 5)
            self.f[7] = _given(_get(cur, F_NAMESPACE_COUNT), 7)
            self.f[9] = _given(_get(cur, F_ACTIVE_CONNECTIONS), 9)
        else:
            for j in (2, 3, 5, 7, 9):
                self.f[j] = _MISSING_INPUT[j]
        self.f[10] = _given(_get(cost, F_COST_PER_1K_WRITES), 10) if cost is not None else _MISSING_INPUT[10]
        self.f[11] = _given(_get(hl, F_UPTIME), 11) if hl is not None else _MISSING_INPUT[11]
        self.backend_type = _TYPE_CODE[_get(reg, F_BACKEND_TYPE)]
        self.health = _HEALTH_CODE[_get(hl, F_STATUS) if hl is not None else "unknown"]  # Registration.health_status
        consistency = _get(reg, F_CONSISTENCY)
        self.consistency = _UNKNOWN_CONSISTENCY_CODE if consistency is None else _CONSISTENCY_CODE[consistency]
        self.open_incidents = 0.0
        if hl is not None:
            for incident in _get(hl, F_HEALTH_INCIDENTS):
                if _get(incident, F_RESOLVED_AT) is None:
                    self.open_incidents += 1.0
        for incident in _get(reg, F_RECENT_INCIDENTS):
            if _get(incident, F_RESOLVED_AT) is None:
                self.open_incidents += 1.0
        return 0

    @property
    def floats(self):
        """The input floats, compiled.INPUT_FLOATS order."""
        return [self.f[j] for j in range(_N_INPUT)]


cdef inline void _set_bits(mask_t* row, Py_ssize_t words, list bits):
    cdef Py_ssize_t b
    memset(row, 0, words * sizeof(mask_t))
    for b in bits:
        row[b >> 6] |= (<mask_t>1) << (b & 63)


cpdef index_t write_row(CoreRegistry core, Py_ssize_t i, Row row, bint keep_live, bint keep_usage,
                        bint keep_health, index_t label, bint set_label, index_t start,
                        bint used_before) except -1:
    """Position ``i`` := ``row``, every column in one call; returns where
    its latency entries stop (they are written at ``start``). The caller
    made room for ``i`` (``i`` < the core's positions), for every token of
    ``row`` and for the entries, and refreshed the core's pointers.
    ``keep_live``: reservations stay; ``keep_usage``: the observed usage
    stays (write_rps, read_rps, storage_used, namespace_count,
    active_connections);
    ``keep_health``: status and uptime stay. ``set_label``: ``label``
    becomes the position's order label. ``used_before``: the position held
    a backend (a reused hole, a replace), whose feature bits are cleared
    first, one word in every feature row; a position never used holds none
    (``Columns``: no feature bit at or past ``size``).

    Ends with ``core.recompute_usage(i)``: the single place a written row is
    announced to the core (an add then marks it alive with ``set_alive``)."""
    cdef Reg* r = &core.r
    cdef mask_t* fb = <mask_t*>r.feature_bits
    cdef Py_ssize_t n_features = len(core._feature_tokens)
    cdef Py_ssize_t t, e, stop, word = i >> 6
    cdef mask_t bit = (<mask_t>1) << (i & 63)
    cdef score_t* cost_col
    cdef double cost, uptime
    cdef tuple entry
    if not 0 <= i < r.n or word >= r.stride:
        raise IndexError(i)  # the caller makes room first; never reached on the documented path
    stop = start + len(row.latency)
    if stop > start and stop > core._entry_room:
        raise IndexError(stop)
    cost_col = core._cost_col
    (<score_t*>r.max_w)[i] = row.f[0]
    (<score_t*>r.max_r)[i] = row.f[1]
    (<score_t*>r.max_storage)[i] = row.f[4]
    (<score_t*>r.max_ns)[i] = row.f[6]
    (<score_t*>r.max_conn)[i] = row.f[8]
    (<score_t*>r.open_incidents)[i] = row.open_incidents
    cost_col[i] = row.f[10]
    if not keep_usage:
        core._cur_w[i] = row.f[2]
        core._cur_r[i] = row.f[3]
        core._storage_used[i] = row.f[5]
        core._ns_count[i] = row.f[7]
        core._conn[i] = row.f[9]
    if not keep_health:
        core._uptime[i] = row.f[11]
        core._health[i] = <code_t>row.health
    cost = cost_col[i]
    (<score_t*>r.cost_score)[i] = 0.0 if cost != cost else 1.0 / (cost + 1.0)
    uptime = core._uptime[i]
    core._avail_score[i] = 0.0 if uptime != uptime else uptime / 100.0
    if not keep_live:
        core._res_w[i] = 0.0
        core._res_r[i] = 0.0
        core._res_storage[i] = 0.0
        core._res_ns[i] = 0.0
        core._res_conn[i] = 0.0
    (<code_t*>r.btype)[i] = <code_t>row.backend_type
    (<code_t*>r.consistency)[i] = <code_t>row.consistency
    # Bit i of every feature row: cleared where a backend held it before
    # (a word in each of the rows, the costly part of a write in a large
    # registry), then set for the row's tokens.
    if used_before:
        for t in range(n_features):
            fb[t * r.stride + word] &= ~bit
    for t in row.tokens:
        fb[t * r.stride + word] |= bit
    _set_bits(<mask_t*>r.region_rows + i * r.wr, r.wr, row.regions)
    _set_bits(<mask_t*>r.compliance_rows + i * r.wk, r.wk, row.compliance)
    e = start
    for entry in row.latency:
        (<index_t*>r.lat_token)[e] = entry[0]
        (<index_t*>r.lat_vtoken)[e] = entry[1]
        (<score_t*>r.lat_p99)[e] = entry[2]
        (<score_t*>r.lat_p50)[e] = entry[3]
        (<score_t*>r.lat_p95)[e] = entry[4]
        (<score_t*>r.lat_p999)[e] = entry[5]
        (<score_t*>r.lat_max_w)[e] = entry[6]
        (<score_t*>r.lat_max_r)[e] = entry[7]
        (<signed char*>r.lat_batch)[e] = <signed char>entry[8]
        (<score_t*>r.lat_max_batch)[e] = entry[9]
        (<score_t*>r.lat_conc)[e] = entry[10]
        e += 1
    (<index_t*>r.lat_start)[i] = start
    (<index_t*>r.lat_stop)[i] = stop
    if set_label:
        (<index_t*>r.id_rank)[i] = label
    core._recompute_usage(i)
    return stop


# --- ids in byte order, with their order labels -----------------------------------------

from cpython.unicode cimport PyUnicode_Compare, PyUnicode_KIND, PyUnicode_DATA, PyUnicode_GET_LENGTH
from libc.string cimport memcmp
from libc.stdint cimport uint64_t
from cpython cimport array
from libc.string cimport memmove
import array as _array

cdef enum:
    _LOAD = 256      # ids per block of an IdOrder (a block is split past twice this)
    _RECENT = 64     # ids an IdOrder remembers as added lately (an id beside one is given room after it)

ID_ORDER_RECENT = _RECENT  # ids an IdOrder remembers as added lately (IdOrder.label_for)


cdef inline bint _id_below(str a, str b) except -1:
    # a < b in code point order, which is the byte order of UTF-8 (the order
    # every path ties by). Two strs of one byte per character (ASCII and
    # Latin-1 ids: nearly every id) compare with a memcmp of their bytes,
    # which is that order; others through PyUnicode_Compare (some 90
    # instructions a call where this takes 30).
    cdef Py_ssize_t la, lb
    cdef int c
    if PyUnicode_KIND(a) == 1 and PyUnicode_KIND(b) == 1:
        la, lb = PyUnicode_GET_LENGTH(a), PyUnicode_GET_LENGTH(b)
        c = memcmp(PyUnicode_DATA(a), PyUnicode_DATA(b), la if la < lb else lb)
        return c < 0 or (c == 0 and la < lb)
    return PyUnicode_Compare(a, b) < 0


cdef inline Py_ssize_t _bisect_ids(list items, str key) except -1:
    # The first j with items[j] >= key (``_id_below``'s order).
    cdef Py_ssize_t lo = 0, hi = len(items), mid
    while lo < hi:
        mid = (lo + hi) >> 1
        if _id_below(<str>items[mid], key):
            lo = mid + 1
        else:
            hi = mid
    return lo


@cython.final
@cython.no_gc
cdef class IdOrder:
    """The ids of a live registry in byte order with their order labels
    (``living.Layout``): a list of sorted blocks, each with its labels in a
    C array beside it, so that finding an added id's neighbours (and their
    labels) and inserting it costs two binary searches and two short
    inserts, with no dictionary keyed by id to probe. A removed id stays in
    place with its label, only counted (``note_removed``, ``removed``): which
    ids are live is the registry's index, which the methods that need it
    are given (``purge``, ``label_for``). Added back, a removed id is found
    by the search that places a new id, with its label. ``labels``: id ->
    label, for every id in the order (removed ones included), made when
    asked for."""

    cdef list blocks             # sorted lists of ids, each non-empty
    cdef list lblocks            # array('q') beside each block: its ids' labels
    cdef list maxes              # the last id of each block
    cdef readonly Py_ssize_t removed  # ids in the order that were removed (their labels stay in ``lblocks``)
    cdef Py_ssize_t count
    cdef index_t gap, lowest, highest   # new labels inside (lowest, highest), both within 2**62 of 0
    cdef dict recent             # id -> ``labelled`` when it was given its label (kept while recent)
    cdef Py_ssize_t labelled     # new labels given so far

    def __init__(self, list ids, list labels, gap, lowest, highest):
        """``ids`` in byte order, ``labels`` increasing with them; new
        labels are kept strictly inside (``lowest``, ``highest``), ``gap``
        apart when ids arrive past either end. The bounds lie within 2**62
        of 0 (``living.Layout`` takes those two), so the difference of two
        labels is a C integer."""
        if not -(1 << 62) <= lowest < highest <= (1 << 62) or gap < 1:
            raise ValueError(f"IdOrder bounds must satisfy -2**62 <= lowest < highest <= 2**62 and gap >= 1, "
                             f"got {lowest}, {highest} and {gap}")
        if len(ids) != len(labels):
            raise ValueError(f"IdOrder needs a label for each id, got {len(ids)} ids and {len(labels)} labels")
        self._blocks_of(ids, labels)
        self.removed = 0
        self.recent = {}
        self.gap, self.lowest, self.highest = gap, lowest, highest

    cdef int _blocks_of(self, list ids, list labels) except -1:
        # The blocks (and their label arrays) of ``ids`` in order, _LOAD each.
        cdef Py_ssize_t j
        self.blocks = [ids[j:j + _LOAD] for j in range(0, len(ids), _LOAD)]
        self.lblocks = [_array.array("q", labels[j:j + _LOAD]) for j in range(0, len(ids), _LOAD)]
        self.maxes = [block[len(block) - 1] for block in self.blocks]  # no wraparound in this module
        self.count = len(ids)
        return 0

    def __len__(self):
        return self.count

    def __contains__(self, backend_id):
        """Whether ``backend_id`` is in the order (live or removed)."""
        return type(backend_id) is str and self._has(backend_id)

    def ids(self):
        """Every id in the order (removed ones included), in byte order."""
        return [backend_id for block in self.blocks for backend_id in block]

    @property
    def labels(self):
        """id -> label, for every id in the order (removed ones included)."""
        return {backend_id: label for block, lb in zip(self.blocks, self.lblocks)
                for backend_id, label in zip(block, lb)}

    cdef Py_ssize_t _find(self, str backend_id, Py_ssize_t* at) except -2:
        # The block of ``backend_id`` in the order, its position there in
        # ``at`` (two binary searches); -1 when it is not in the order.
        cdef Py_ssize_t b = _bisect_ids(self.maxes, backend_id)
        if b == len(self.blocks):
            return -1
        at[0] = _bisect_ids(<list>self.blocks[b], backend_id)
        return b if (<list>self.blocks[b])[at[0]] == backend_id else -1

    cdef bint _has(self, str backend_id) except -1:
        cdef Py_ssize_t at
        return self._find(backend_id, &at) >= 0

    cpdef note_removed(self):
        """An id in the order was removed: it keeps its place and label,
        and is counted (no set of removed ids: adding to one
        was 0.2 us of a churn remove at 100,000 backends in a profile, its
        table far from the cache)."""
        self.removed += 1

    cpdef bint crowded(self):
        """Whether the removed ids it keeps make up a third of it (and more
        than 64): ``purge`` is then due."""
        return self.removed > 64 + self.count // 2

    def purge(self, live):
        """Forget the ids not in ``live`` (the registry's index: the removed
        ones), places and labels (one pass over the ids in C; the live ids
        keep their labels)."""
        cdef list kept = [], kept_labels = []
        cdef Py_ssize_t b, j
        cdef array.array lb
        for b in range(len(self.blocks)):
            lb = <array.array>self.lblocks[b]
            for j, backend_id in enumerate(<list>self.blocks[b]):
                if backend_id in live:
                    kept.append(backend_id)
                    kept_labels.append(lb.data.as_longlongs[j])
        self._blocks_of(kept, kept_labels)
        self.removed = 0

    cdef inline bint _at(self, Py_ssize_t* b, Py_ssize_t* pos) noexcept:
        # (block, position) one past either end of its block moved to the
        # neighbouring block's end; False past either end of the order.
        if pos[0] < 0:
            b[0] -= 1
            if b[0] < 0:
                return False
            pos[0] = len(<list>self.blocks[b[0]]) - 1
        elif pos[0] >= len(<list>self.blocks[b[0]]):
            b[0] += 1
            if b[0] >= len(self.blocks):
                return False
            pos[0] = 0
        return True

    cdef inline index_t _label_at(self, Py_ssize_t b, Py_ssize_t pos) noexcept:
        # The label of the id at (block, position), or the bound past either end.
        if not self._at(&b, &pos):
            return self.lowest if pos < 0 else self.highest
        return (<array.array>self.lblocks[b]).data.as_longlongs[pos]

    cdef object _id_at(self, Py_ssize_t b, Py_ssize_t pos):
        # The id at (block, position), or None past either end.
        if not self._at(&b, &pos):
            return None
        return (<list>self.blocks[b])[pos]

    cpdef index_t label_for(self, str backend_id, id_label, dict index, CoreRegistry core=None) except? -1:
        """The order label of an added id: its own again if it was removed,
        else one between its neighbours' (at either end one gap out, ids
        often arrive in order; beside one of the last _RECENT ids added, a
        sixteenth of the room away from it; else the middle; spreading a
        window of labels out first when the neighbours' touch; live ids
        (those in ``index``, the registry's: id -> position) whose label
        changes get it written into ``id_label`` at ``index[id]``, and told
        to ``core``'s scan order, whose rank bounds follow labels)."""
        cdef Py_ssize_t nb = len(self.blocks), b, pos, m
        cdef index_t lo, hi, label, gap = self.gap
        cdef bint at_end, at_start
        cdef list block
        cdef array.array lb
        if nb == 0:
            label = self.lowest + <index_t>((<uint64_t>self.highest - <uint64_t>self.lowest) >> 1)
            self.blocks.append([backend_id])
            lb = _array.array("q", [label])
            self.lblocks.append(lb)
            self.maxes.append(backend_id)
            self.count = 1
            return label
        b = _bisect_ids(self.maxes, backend_id)
        if b == nb:
            b = nb - 1
            pos = len(<list>self.blocks[b])
        else:
            pos = _bisect_ids(<list>self.blocks[b], backend_id)
            if (<list>self.blocks[b])[pos] == backend_id:  # removed before: it takes its label back
                self.removed -= 1
                return (<array.array>self.lblocks[b]).data.as_longlongs[pos]
        lo = self._label_at(b, pos - 1)
        hi = self._label_at(b, pos)
        at_end = b == nb - 1 and pos == len(<list>self.blocks[b])
        at_start = b == 0 and pos == 0
        # (No difference overflows: one of lo and hi is a label, inside the bounds.)
        if at_end and hi - lo > 2 * gap:
            label = lo + gap
        elif at_start and hi - lo > 2 * gap:
            label = hi - gap
        else:
            if hi - lo < 2:
                self._spread(b, pos, id_label, index, core)
                lo = self._label_at(b, pos - 1)
                hi = self._label_at(b, pos)
            # Ids that arrive in order (numbered names, a fleet or several
            # growing at once) go in one after another at the same place:
            # after an id added lately, a sixteenth of the room on, so the
            # next ones find room after it (a midpoint would halve it each
            # time: a spread every ~24 adds); before one, a sixteenth back.
            # Else the midpoint.
            if self._is_recent(self._id_at(b, pos - 1)):
                label = lo + max((hi - lo) >> 4, 1)
            elif self._is_recent(self._id_at(b, pos)):
                label = hi - max((hi - lo) >> 4, 1)
            else:
                label = lo + (hi - lo) // 2
        block = <list>self.blocks[b]
        block.insert(pos, backend_id)
        lb = <array.array>self.lblocks[b]
        m = len(lb)
        array.resize_smart(lb, m + 1)
        memmove(&lb.data.as_longlongs[pos + 1], &lb.data.as_longlongs[pos], (m - pos) * sizeof(long long))
        lb.data.as_longlongs[pos] = label
        if pos == len(block) - 1:
            self.maxes[b] = backend_id
        if len(block) > 2 * _LOAD:
            self.blocks.insert(b + 1, block[_LOAD:])
            del block[_LOAD:]
            self.lblocks.insert(b + 1, lb[_LOAD:])
            array.resize(lb, _LOAD)
            self.maxes.insert(b, block[len(block) - 1])
        self.count += 1
        self.labelled += 1
        recent = self.recent
        recent[backend_id] = self.labelled
        if len(recent) > 2 * _RECENT:  # forget those _RECENT or more labels ago (amortized: once every _RECENT)
            self.recent = {k: at for k, at in recent.items() if self.labelled - <Py_ssize_t>at < _RECENT}
        return label

    cdef bint _is_recent(self, backend_id):
        # Whether ``backend_id`` was given one of the last _RECENT new labels.
        at = self.recent.get(backend_id) if backend_id is not None else None
        return at is not None and self.labelled - <Py_ssize_t>at < _RECENT

    cdef tuple _window(self, Py_ssize_t b, Py_ssize_t pos, Py_ssize_t width):
        # Up to ``width`` places before (b, pos) and from it on, as
        # (block, position) pairs, with the label just outside each side
        # and whether each side reached its end.
        cdef list before = [], after = []
        cdef Py_ssize_t bb = b, p = pos - 1, nb = len(self.blocks)
        while len(before) < width:
            if p < 0:
                bb -= 1
                if bb < 0:
                    break
                p = len(<list>self.blocks[bb]) - 1
            before.append((bb, p))
            p -= 1
        before.reverse()
        lo = self._label_at(bb, p) if bb >= 0 else self.lowest
        first = bb < 0 or (bb == 0 and p < 0)
        bb, p = b, pos
        while len(after) < width:
            if p >= len(<list>self.blocks[bb]):
                bb += 1
                if bb >= nb:
                    break
                p = 0
            after.append((bb, p))
            p += 1
        hi = self._label_at(bb, p) if bb < nb else self.highest
        last = bb >= nb or (bb == nb - 1 and p >= len(<list>self.blocks[bb]))
        return before, after, lo, hi, first and last

    cdef _spread(self, Py_ssize_t b, Py_ssize_t pos, id_label, dict index, CoreRegistry core):
        # Evenly spaced labels for the ids around (b, pos), widening the
        # window until it has room for them all (amortized: each doubling
        # halves how often it happens), one gap left free at (b, pos).
        # Removed ids in the window get new labels too, in the order only.
        cdef Py_ssize_t width = 8, j, bb, p
        cdef index_t* out = <index_t*>_ptr(id_label)
        cdef index_t label
        while True:
            before, after, lo, hi, everything = self._window(b, pos, width)
            count = len(before) + len(after)
            if hi - lo > 4 * (count + 2) or everything:
                break
            width *= 2
        step = (hi - lo) // (count + 2)
        for j, (bb, p) in enumerate(before + after):
            label = lo + step * (j + 1 + (j >= len(before)))
            (<array.array>self.lblocks[bb]).data.as_longlongs[p] = label
            backend_id = (<list>self.blocks[bb])[p]
            if backend_id in index:  # live (removed ids: in the order only)
                out[<Py_ssize_t>index[backend_id]] = label
                if core is not None:
                    core.label_written(index[backend_id])


# --- adds and removes, in one call each ------------------------------------------------

cdef tuple _NO_TOKENS = ()


cdef inline object _prepared_kept(item):
    # What is kept of a PreparedRegistration: its record, or itself when it
    # holds inline secrets (allowed).
    cdef PreparedRegistration p = <PreparedRegistration?>item
    return p.record if p.record is not None else p.registration


cdef class LayoutCore:
    """The hot half of ``living.Layout`` (which subclasses it and documents
    the whole): ``add`` and ``remove``, each one call with no Python frame
    per step, over the parts of the columns that stay the same objects for
    their life (the vocabularies, the store, the id list, the holes)."""

    cdef readonly object columns
    cdef readonly CoreRegistry core
    cdef public IdOrder _order            # ids in byte order with their labels, made on the first add
    cdef public TokenMemo _memo           # the feature bits of names seen before (Row)
    cdef public Py_ssize_t _positions_allowed  # positions the bit matrices allow (compiled.max_positions)
    cdef list f_tokens, r_tokens, c_tokens    # the vocabularies' tokens and their index (token -> bit),
    cdef dict f_index, r_index, c_index       # which they change in place only
    cdef dict store
    cdef list holes, backend_ids
    cdef readonly RecordStore records  # position -> its registration's record (see __init__)
    cdef readonly dict kept            # position -> what ``records`` cannot hold (a long record, or a
                                       # Registration with inline secrets); usually empty
    cdef object encode                 # a registration -> its record (bytes)
    cdef object encode_into            # (registration, bytearray): its record into the bytearray
    cdef object hold                   # a registration -> its record (bytes), or itself when it holds inline secrets
    cdef bytearray scratch             # the record of a single add, on its way into ``records``
    cdef dict attrs  # the columns' instance dict: its plain attributes (size, entries, dense, the id caches)

    def __init__(self, columns, CoreRegistry core, list records=None, encoder=None, hold=None):
        """``records``: what is kept of each position's registration when
        known (a registry loaded from documents; a registry built from a
        table or a snapshot has none), else None: its record (bytes, the
        registration encoded by ``encoder``, a msgspec msgpack Encoder: the
        form a snapshot stores), kept in a ``RecordStore`` (_records.pxi:
        a remove frees no object), or the Registration itself when it holds
        inline secrets the caller allowed (a record never holds one; ``hold``
        tells which an add's registration is)."""
        self.columns = columns
        # Columns has no property or slot of these names (tests/test_living_rows.py
        # checks): a dict access each, where getattr / setattr on it cost
        # 150-400 instructions. An add still sets ``size`` and ``dense``
        # through setattr (once per backend), where a test interrupts it
        # half-way.
        self.attrs = columns.__dict__
        self.core = core
        self._order = None
        self._memo = TokenMemo()
        self._positions_allowed = -1
        features, regions, compliance = columns.features, columns.regions, columns.compliance
        self.f_tokens, self.r_tokens, self.c_tokens = features.tokens, regions.tokens, compliance.tokens
        self.f_index, self.r_index, self.c_index = features.index, regions.index, compliance.index
        self.store, self.holes, self.backend_ids = columns.store, columns.holes, columns.backend_ids
        self.records = RecordStore()
        self.records._cover(len(self.backend_ids))
        self.kept = {}
        self.scratch = bytearray()
        self.encode = encoder.encode if encoder is not None else None
        self.encode_into = encoder.encode_into if encoder is not None else None
        self.hold = hold
        if records is not None:
            if len(records) != len(self.backend_ids):
                raise ValueError(f"{len(records)} records for {len(self.backend_ids)} positions")
            for i, record in enumerate(records):
                if record is not None:
                    self._keep(i, record)

    cdef int _keep(self, Py_ssize_t i, record) except -1:
        # Keep ``record`` (bytes, or a Registration) for position ``i``.
        if type(record) is bytes and self.records._put(i, PyBytes_AS_STRING(record), len(<bytes>record)):
            if self.kept:
                self.kept.pop(i, None)
            return 0
        self.records._drop(i)
        self.kept[i] = record
        return 0

    def record_at(self, Py_ssize_t i):
        """What is kept of position ``i``'s registration: its record (bytes),
        a Registration (inline secrets), or None."""
        if self.kept:
            found = self.kept.get(i)
            if found is not None:
                return found
        return self.records.get(i)

    def keep(self, Py_ssize_t i, registration, bint secrets=False):
        """Keep ``registration``'s record for position ``i`` (a replace);
        ``secrets``: inline secrets were allowed. Returns what is kept."""
        record = self._record(registration, secrets)
        self._keep(i, record)
        return record

    cdef object _record(self, registration, bint secrets):
        return self.hold(registration) if secrets else self.encode(registration)

    cdef int _forget(self, Py_ssize_t i) except -1:
        self.records._drop(i)
        if self.kept:
            self.kept.pop(i, None)
        return 0

    def forget(self, Py_ssize_t i):
        """Let go of position ``i``'s record."""
        self._forget(i)

    def add(self, list registrations, bint log=False, bint secrets=False, bint prepared=False):
        """Write each registration into a free position (a hole first, else
        the next one), all or nothing. Returns None, with nothing changed,
        when an id is registered already (the caller says which; the ids of
        the list are distinct). Else the feature tokens new to the registry
        (the caller checks their names: ``catalogue.check_vocabulary``). Each
        registration's record is kept at its position (``records``; with
        ``secrets``, inline secrets allowed, ``hold`` says what is kept;
        with ``prepared``, the registrations are PreparedRegistrations,
        their records made already);
        with ``log``, the add is logged in the core (with the records): the
        registry's share, done here to spare a Python call.

        The registrations become rows (their new names added to the
        vocabularies); the limits are checked when a vocabulary grew or the
        positions pass ``_positions_allowed`` (``check_limits``, which
        forgets the new names when it refuses); room is made when something
        does not fit (``make_room``); then each registration is written into
        a hole (a reused position: its old feature bits cleared) or a new
        last position, labelled, indexed and marked alive. Everything that
        can be refused is refused before any position changes; an
        interruption undoes what was written (``abandon``, ``remove``)."""
        cdef CoreRegistry core = self.core
        cdef dict index = core._the_index()
        cdef Py_ssize_t n = len(registrations)
        # The records of a list (or with secrets, or prepared); a single one
        # is at ``data`` (below).
        cdef list records = None
        cdef object one = None  # the record of a single prepared registration
        cdef PreparedRegistration p
        if prepared and n == 1 and (<PreparedRegistration?>registrations[0]).record is not None:
            p = <PreparedRegistration>registrations[0]
            one = p.record
            registrations = [p.registration]
        elif prepared:  # a list, or one holding inline secrets (allowed): kept as it is
            records = [_prepared_kept(item) for item in registrations]
            registrations = [(<PreparedRegistration>item).registration for item in registrations]
        if log:
            core._log_ready()
        if not _tables_loaded:
            _load_row_tables()
        cdef list ids = [_get(reg, F_BACKEND_ID) for reg in registrations]
        if n == 1:
            if ids[0] in index:
                return None
        elif not index.keys().isdisjoint(ids):
            return None
        cdef IdOrder order = self._order
        if order is None or order.crowded():
            order = self._ids_in_order()  # made (or made again) before any position changes
        cdef list f_tokens = self.f_tokens, r_tokens = self.r_tokens, c_tokens = self.c_tokens
        cdef Py_ssize_t known_f = len(f_tokens), known_r = len(r_tokens), known_c = len(c_tokens)
        cdef list holes = self.holes, backend_ids = self.backend_ids
        cdef RecordStore store = self.records
        cdef bytearray scratch = self.scratch
        columns = self.columns
        cdef dict attrs = self.attrs
        cdef Py_ssize_t size = attrs["size"]
        cdef Py_ssize_t appended = max(n - len(holes), 0), positions = size + max(appended, 1)
        cdef Py_ssize_t j, done = 0, i = -1
        cdef index_t entries, start, label
        cdef list rows
        cdef bint grew, reused
        cdef Row row
        cdef TokenMemo memo = self._memo
        cdef dict f_index = self.f_index, r_index = self.r_index, c_index = self.c_index
        # One record, made here or prepared (a prepared registration's record
        # says already whether it held a secret: ``secrets`` is for the others).
        cdef bint single = n == 1 and (one is not None if prepared else not secrets)
        cdef const char* data = NULL  # a single record: in ``scratch``, or the prepared one's
        cdef Py_ssize_t length = 0
        try:
            rows = []
            for reg in registrations:
                row = Row.__new__(Row)
                row.read(reg, f_index, f_tokens, r_index, r_tokens, c_index, c_tokens, memo)
                rows.append(row)
            # Encoded now, while the registration is in the cache.
            if single and one is None:
                self.encode_into(registrations[0], scratch)
                data, length = PyByteArray_AS_STRING(scratch), PyByteArray_GET_SIZE(scratch)
            elif single:
                data, length = PyBytes_AS_STRING(one), len(<bytes>one)
            elif records is None:
                records = [self._record(reg, secrets) for reg in registrations]
        except BaseException:
            self.forget_names((known_f, known_r, known_c))
            raise
        grew = len(f_tokens) != known_f or len(r_tokens) != known_r or len(c_tokens) != known_c
        if grew or positions > self._positions_allowed:
            self.check_limits(positions, (known_f, known_r, known_c))
        start = entries = attrs["entries"]
        for row in rows:
            entries += len(row.latency)
        if grew or size + appended > core._row_room or entries > core._entry_room:
            if not self.make_room(size + appended, entries, grew) and grew:
                core.refresh(grew)  # a name added, no array replaced (make_room refreshed when it replaced one)
        id_label = self.store["id_label"]
        entries = start
        try:
            for j in range(n):
                backend_id = ids[j]
                label = order.label_for(backend_id, id_label, index, core)
                reused = len(holes) > 0
                if reused:
                    i = holes.pop()  # claimed: ``abandon`` gives it back
                    columns.dense = False  # a hole reused: latency entries out of position order
                else:
                    columns.size = size + 1  # nothing is claimed until this is done
                    size += 1
                    i = size - 1
                    backend_ids.append(None)
                    store._cover(size)
                    core.r.n = size
                    core.r.nw = (size + 63) >> 6  # core.resize(size)
                backend_ids[i] = backend_id
                entries = write_row(core, i, <Row>rows[j], False, False, False, label, True, entries, reused)
                attrs["entries"] = entries
                index[backend_id] = i
                if not single:
                    self._keep(i, records[j])
                elif not store._put(i, data, length):
                    self._keep(i, data[:length])  # longer than a slot: kept as bytes
                core._set_alive(i, True)
                i = -1
                done += 1
        except BaseException:
            # Only an interruption gets here: the backend being written and
            # those added before it leave again.
            if done < n:
                self.abandon(ids[done], i)
            for j in range(done):
                self.remove(ids[j])
            raise
        finally:
            core._positions_version += 1  # core.positions_moved()
            self._ids_changed()
        core._relayout_if_misplaced()
        if log:
            # The record of a single add, copied into the log's ring of
            # bytes (no object to free when the ring overwrites it), else a
            # tuple of them (which the cyclic GC does not track): the log
            # holds nothing the collector must scan again
            # (``Registry.changes`` gives every add's registrations as a
            # tuple).
            if single:
                core._logged_record("add", None, data, length)
            else:
                core._logged("add", None, records[0] if n == 1 else tuple(records))
        return f_tokens[known_f:] if len(f_tokens) > known_f else _NO_TOKENS

    cdef inline int _ids_changed(self) except -1:
        # ``columns.ids_changed()`` when it has something to forget (a
        # method call costs some 700 instructions).
        cdef dict attrs = self.attrs
        if attrs.get("_ids") is not None or attrs.get("_rank_cache") is not None:
            self.columns.ids_changed()
        return 0

    def remove(self, backend_id, bint log=False):
        """Clear the backend's alive bit and free its position; returns it.
        An unknown id is a RegistryError (``CoreRegistry.position``). With
        ``log``, the remove is logged in the core (the registry's share, as
        for ``add``).

        The position leaves the index, its alive bit is cleared (in the
        scan order too), its id is let go and the position becomes a hole;
        the order keeps the id's place as a removed one's."""
        return self._remove(backend_id, log)

    cdef Py_ssize_t _remove(self, backend_id, bint log) except -1:
        # ``remove``, called in C by ``RegistryEdits.remove``.
        cdef CoreRegistry core = self.core
        cdef dict index = core._the_index()
        if log:
            core._log_ready()
        i = index.pop(backend_id, None) if type(backend_id) is str else None
        if i is None:
            core.position(backend_id, "remove")  # raises, unless a str subclass names a backend
            i = index.pop(backend_id)
        cdef Py_ssize_t at = i
        # What follows reads memory at the position, last touched long ago in
        # a large registry: asked for at once, its misses overlap rather than
        # come one after another (in turns, a churn remove at 100,000
        # backends 1.26 us against 1.31 without: little, but not nothing).
        core._prefetch_position(at)
        pm_prefetch(pm_list_item_at(self.backend_ids, at))
        self.records._prefetch(at)
        core._set_alive(at, False)
        self.backend_ids[at] = None
        self._forget(at)
        self.holes.append(i)
        self.attrs["dense"] = False
        if self._order is not None:
            self._order.note_removed()
        core._positions_version += 1  # core.positions_moved()
        self._ids_changed()
        if log:
            core._logged("remove", backend_id, None)
        return at

