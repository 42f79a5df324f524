# Preparing a slot: a validated SlotRequirement -> the kernel's Slot struct,
# without a numpy array or a Python container per slot. Included by _core.pyx.
#
# ``SlotVocab`` holds what preparing reads (the vocabularies as bits, the
# enumerations as codes) and the lookups already made; a registry that grows
# its vocabularies makes a new one (``vocab_version`` + 1), and slots
# prepared against the old one are prepared again on their next use.


@cython.final
cdef class SlotVocab:
    cdef dict features, regions, compliance, cap_bits, ifc_bits
    cdef dict type_code, health_code, consistency_code   # name -> code
    cdef int unknown_consistency
    cdef unsigned int all_types
    cdef index_t txn_bit
    cdef index_t wr, wk, wf
    cdef readonly Py_ssize_t version

    def __init__(self, columns, Py_ssize_t version):
        from .compiled import CONSISTENCY_CODE, HEALTH_CODE, TYPE_CODE, UNKNOWN_CONSISTENCY
        self.features = columns.features.index
        self.regions = columns.regions.index
        self.compliance = columns.compliance.index
        self.cap_bits = {}
        self.ifc_bits = {}
        self.type_code = TYPE_CODE
        self.health_code = HEALTH_CODE
        self.consistency_code = CONSISTENCY_CODE
        self.unknown_consistency = UNKNOWN_CONSISTENCY
        self.all_types = (1u << len(TYPE_CODE)) - 1
        self.txn_bit = self.features.get("c:transaction", -1)
        self.wr = columns.store["region_rows"].shape[1]
        self.wk = columns.store["compliance_rows"].shape[1]
        self.wf = columns.features.words
        self.version = version

    cdef index_t feature_bit(self, dict memo, object item, bint capability) except -2:
        found = memo.get(item)
        if found is None:
            from .vocabulary import requirement_token
            found = self.features.get(requirement_token("capability" if capability else "interface", item), -1)
            if len(memo) >= 65536:  # names nobody declares must not grow it without bound
                memo.clear()
            memo[item] = found
        return found


cdef enum:
    _SLOT_CACHE = 256    # slot mappings remembered per registry (see CoreRegistry.resolve)
    _INLINE_WORDS = 12   # a slot's tokens and masks fit here unless the vocabularies are large


cdef struct _SlotKey:
    # Slot's scalars, laid out for PreparedSlot.kernel_key.
    rules_t always_failed
    index_t n_req
    bint region_filter, compliance_filter, lat_all
    unsigned int type_mask, health_mask
    int max_consistency
    score_t min_w, min_r, min_storage, max_lat_ms, min_conn
    index_t pref_region, wr, wk, wf
    index_t n_pref, n_aff, current_pos
    score_t aff_total, max_per_backend, max_per_region, max_skew
    bint cap_rules, needs_batch, cap_throughput
    score_t max_p50, max_p95, max_p999, min_batch, min_conc


@cython.final
cdef class PreparedSlot:
    """A slot requirement compiled for one registry (``Registry.prepare``).

    The kernel reads the C struct, built by ``CoreRegistry.prepare`` without
    a numpy array or a Python container per slot. What explain, reasons and
    the numpy path read (``requirements``, ``region_bits``, ...) is computed
    by ``slot_details.slot_details`` from the requirement on first access: the
    hot path never pays for it, and the two preparations check each other
    in the tests.
    """
    cdef Slot s
    cdef mask_t _inline[_INLINE_WORDS]
    cdef mask_t* _heap
    cdef void* _extra                    # ranked regions and preferred terms (NULL: none)
    cdef readonly bint sticky            # names a current backend (found by position)
    cdef readonly Py_ssize_t positions_version  # the positions it found it at
    cdef readonly object requirement     # the validated SlotRequirement
    cdef readonly object columns         # the registry's columns it was prepared for
    cdef readonly tuple default_health   # the policy's statuses it was prepared with
    cdef readonly Py_ssize_t vocab_version  # the vocabularies it was prepared against
    cdef index_t wr, wk, wf              # their mask words then
    cdef object _details
    cdef tuple _taken                    # what a reservation records, made on first reserve (_reserve.pxi)

    def __cinit__(self):
        self._heap = NULL
        self._extra = NULL

    def __dealloc__(self):
        PyMem_Free(self._heap)
        PyMem_Free(self._extra)

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
        return f"<PreparedSlot {self.requirement.slot_name!r}{' (unmatchable)' if self.s.always_failed else ''}>"

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
        return self.s.always_failed != 0

    @property
    def amounts(self):
        """(min_write_rps, min_read_rps, min_storage): what a placement takes."""
        return self.s.min_w, self.s.min_r, self.s.min_storage

    @property
    def always_failed(self):
        """The rule bits (rules.RULES) every backend fails: a required name,
        compliance tag or every listed region no backend knows."""
        return self.s.always_failed

    @property
    def details(self):
        """``slot_details.SlotDetails``: the requirement as explain and the numpy path read it."""
        if self._details is None:
            from .slot_details import slot_details
            self._details = slot_details(self.columns, self.requirement, self.default_health)
        return self._details

    def __getattr__(self, name):
        # Only reached when no attribute of that name exists: the fields of
        # slot_details.SlotDetails (requirements, min_write_rps, region_bits, ...)
        # read through, so explain and reasons never touch the C struct.
        if not name.startswith("_"):  # a protocol probe (__array__, ...) does not build details
            details = self.details
            if name in details.__dataclass_fields__:
                return getattr(details, name)
        raise AttributeError(f"'PreparedSlot' object has no attribute '{name}'")

    def unknown_names(self):
        return [r for r in self.details.requirements if r.bit is None]

    def kernel_key(self):
        """The C struct as bytes, without the slot's name: two slots with the
        same key get the same answers from the kernel (match_many matches
        them once). Every field of ``Slot`` the kernel reads is in it."""
        cdef _SlotKey h
        cdef const Slot* s = &self.s
        memset(&h, 0, sizeof(h))  # padding too: equal slots give equal bytes
        h.always_failed = s.always_failed
        h.n_req = s.n_req
        h.region_filter = s.region_filter
        h.compliance_filter = s.compliance_filter
        h.type_mask = s.type_mask
        h.health_mask = s.health_mask
        h.max_consistency = s.max_consistency
        h.min_w = s.min_w
        h.min_r = s.min_r
        h.min_storage = s.min_storage
        h.max_lat_ms = s.max_lat_ms
        h.min_conn = s.min_conn
        h.lat_all = s.lat_all
        h.pref_region = s.pref_region
        h.wr, h.wk, h.wf = self.wr, self.wk, self.wf
        h.n_pref = s.n_pref
        h.n_aff = s.n_aff
        h.current_pos = s.current_pos
        h.aff_total = s.aff_total
        h.max_per_backend = s.max_per_backend
        h.max_per_region = s.max_per_region
        h.max_skew = s.max_skew
        h.cap_rules = s.cap_rules
        h.needs_batch = s.needs_batch
        h.cap_throughput = s.cap_throughput
        h.max_p50, h.max_p95, h.max_p999 = s.max_p50, s.max_p95, s.max_p999
        h.min_batch, h.min_conc = s.min_batch, s.min_conc
        return b"".join((
            (<char*>&h)[:sizeof(h)],
            (<char*>s.req_tokens)[:s.n_req * sizeof(index_t)] if s.n_req else b"",
            (<char*>s.req_rule)[:s.n_req * sizeof(index_t)] if s.n_req else b"",
            (<char*>s.region_any)[:self.wr * sizeof(mask_t)] if s.region_filter and self.wr else b"",
            (<char*>s.compliance_all)[:self.wk * sizeof(mask_t)] if s.compliance_filter and self.wk else b"",
            (<char*>s.lat_mask)[:self.wf * sizeof(mask_t)] if (s.max_lat_ms < INFINITY or s.cap_rules)
            and not s.lat_all and self.wf else b"",
            (<char*>s.pref_bits)[:s.n_pref * sizeof(index_t)] if s.n_pref else b"",
            (<char*>s.pref_value)[:s.n_pref * sizeof(score_t)] if s.n_pref else b"",
            (<char*>s.aff_kind)[:s.n_aff * sizeof(index_t)] if s.n_aff else b"",
            (<char*>s.aff_code)[:s.n_aff * sizeof(index_t)] if s.n_aff else b"",
            (<char*>s.aff_weight)[:s.n_aff * sizeof(score_t)] if s.n_aff else b""))

    def kernel_view(self):
        """The C struct the kernel reads, as plain Python values (for tests)."""
        wr, wk, wf = self.wr, self.wk, self.wf
        return {
            "unmatchable": bool(self.s.always_failed),
            "always_failed": self.s.always_failed,
            "req_tokens": [self.s.req_tokens[i] for i in range(self.s.n_req)],
            "req_rule": [self.s.req_rule[i] for i in range(self.s.n_req)],
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
            "min_conn": self.s.min_conn,
            "lat_all": bool(self.s.lat_all),
            "lat_mask": [self.s.lat_mask[i] for i in range(wf)],
            "pref_region": self.s.pref_region,
            "pref_ranked": [(self.s.pref_bits[i], self.s.pref_value[i]) for i in range(self.s.n_pref)],
            "affinity": [(self.s.aff_kind[i], self.s.aff_code[i], self.s.aff_weight[i]) for i in range(self.s.n_aff)],
            "affinity_total": self.s.aff_total,
            "current_pos": self.s.current_pos,
            "max_per_backend": self.s.max_per_backend,
            "max_per_region": self.s.max_per_region,
            "max_skew": self.s.max_skew,
            "cap_rules": bool(self.s.cap_rules),
            "max_p50": self.s.max_p50,
            "max_p95": self.s.max_p95,
            "max_p999": self.s.max_p999,
            "needs_batch": bool(self.s.needs_batch),
            "min_batch": self.s.min_batch,
            "min_conc": self.s.min_conc,
            "cap_throughput": bool(self.s.cap_throughput),
        }



cdef inline void _set_bit(mask_t* words, index_t bit) noexcept nogil:
    words[bit >> 6] |= (<mask_t>1) << (bit & 63)


cdef inline index_t _add_token(index_t* tokens, index_t* rules, index_t n, index_t bit,
                               index_t rule) noexcept nogil:
    # Insert into the sorted, duplicate-free list (and its rule beside it);
    # returns the new length.
    cdef index_t j = n
    cdef index_t i
    for i in range(n):
        if tokens[i] == bit:
            return n
    while j > 0 and tokens[j - 1] > bit:
        tokens[j] = tokens[j - 1]
        rules[j] = rules[j - 1]
        j -= 1
    tokens[j] = bit
    rules[j] = rule
    return n + 1


cdef inline rules_t _require(index_t bit, index_t rule, index_t* tokens, index_t* rules, index_t* n,
                             mask_t* lat) noexcept nogil:
    # One required feature (and, with ``lat``, a capability under a latency
    # bound); returns ``rule`` when no backend declares it (bit -1).
    if bit < 0:
        return <rules_t>rule
    n[0] = _add_token(tokens, rules, n[0], bit, rule)
    if lat != NULL:
        _set_bit(lat, bit)
    return 0


cdef inline unsigned int _code_mask(dict codes, object names, str what) except? 0:
    cdef unsigned int mask = 0
    for name in names:
        code = codes.get(name)
        if code is None:
            raise _error(f"Expected one of {', '.join('`%s`' % c for c in codes)}, got `{str(name)[:40]}`",
                         f"slot {what}")
        mask |= 1u << <int>code
    return mask


cdef inline score_t _limit(object value):
    return INFINITY if value is None else <double>value


cdef int _prepare_preferences(PreparedSlot ps, SlotVocab v, object requirement) except -1:
    """The ranked preferred regions and the preferred terms into one buffer
    (only for slots that use them): region bits known to the registry with
    their term ``(L - rank) / L``, and each term's kind, code and weight."""
    cdef Slot* s = &ps.s
    cdef object regions = requirement.preferred_region
    cdef object terms = requirement.preferences
    cdef Py_ssize_t n_reg = len(regions) if isinstance(regions, list) else 0
    cdef Py_ssize_t n_aff = len(terms) if terms else 0
    cdef Py_ssize_t rank, j
    cdef char* buf
    cdef index_t* ints
    cdef score_t* floats
    cdef score_t total = 0.0
    s.n_pref = 0
    s.n_aff = 0
    s.aff_total = 0.0
    if n_reg == 0 and n_aff == 0:
        return 0
    buf = <char*>PyMem_Malloc((n_reg + 2 * n_aff) * sizeof(index_t) + (n_reg + n_aff) * sizeof(score_t))
    if buf == NULL:
        raise MemoryError()
    ps._extra = buf
    ints = <index_t*>buf
    floats = <score_t*>(buf + (n_reg + 2 * n_aff) * sizeof(index_t))
    s.pref_bits = ints
    s.pref_value = floats
    for rank in range(n_reg):
        found = v.regions.get(regions[rank])
        if found is not None:
            ints[s.n_pref] = found
            floats[s.n_pref] = <double>(n_reg - rank) / <double>n_reg
            if s.n_pref == 0:
                s.pref_region = found
            s.n_pref += 1
    s.aff_kind = ints + n_reg
    s.aff_code = ints + n_reg + n_aff
    s.aff_weight = floats + n_reg
    for j in range(n_aff):
        term = terms[j]
        if term.backend_type is not None:
            (<index_t*>s.aff_kind)[j] = AFF_TYPE
            (<index_t*>s.aff_code)[j] = v.type_code[term.backend_type]
        else:
            (<index_t*>s.aff_kind)[j] = AFF_TAG
            (<index_t*>s.aff_code)[j] = v.compliance.get(term.tag, -1)
        (<score_t*>s.aff_weight)[j] = term.weight
        total = total + <double>term.weight
    s.n_aff = n_aff
    s.aff_total = total
    return 0


cdef int _prepare_capability_bounds(Slot* s, object perf) except -1:
    """Issue 13's per-capability bounds; each inert at its default."""
    s.max_p50 = s.max_p95 = s.max_p999 = INFINITY
    s.needs_batch = s.cap_throughput = False
    s.min_batch = s.min_conc = 0.0
    if perf is not None:
        s.max_p50 = _limit(perf.max_latency_p50)
        s.max_p95 = _limit(perf.max_latency_p95)
        s.max_p999 = _limit(perf.max_latency_p999)
        s.needs_batch = perf.needs_batch
        s.min_batch = perf.min_batch_size if perf.min_batch_size is not None else 0.0
        s.min_conc = perf.min_concurrency if perf.min_concurrency is not None else 0.0
        s.cap_throughput = perf.per_capability_throughput
    s.cap_rules = (s.max_p50 < INFINITY or s.max_p95 < INFINITY or s.max_p999 < INFINITY or s.needs_batch
                   or s.min_conc > 0 or s.cap_throughput)
    return 0


cdef PreparedSlot prepare_slot(SlotVocab v, object columns, object requirement, tuple default_health,
                               unsigned int default_health_mask, object core=None,
                               Py_ssize_t positions_version=0):
    """A validated SlotRequirement -> the kernel's struct (``slot_details``
    writes the same rules out in Python; the tests hold the two together)."""
    cdef PreparedSlot ps = PreparedSlot.__new__(PreparedSlot)
    cdef Slot* s = &ps.s
    cdef object perf = requirement.performance
    cdef object caps = requirement.capabilities   # lists once validated; any sequence works
    cdef object ifcs = requirement.interfaces
    cdef bint txn = perf is not None and (perf.requires_transactions or perf.requires_atomic_writes)
    cdef Py_ssize_t n_items = len(caps) + len(ifcs) + txn
    cdef index_t wr = v.wr, wk = v.wk
    cdef mask_t* words = ps._words(2 * n_items + wr + wk + v.wf)
    cdef index_t* tokens = <index_t*>words
    cdef index_t* rules = <index_t*>(words + n_items)
    cdef mask_t* region_any = words + 2 * n_items
    cdef mask_t* compliance_all = region_any + wr
    cdef mask_t* lat_mask = compliance_all + wk
    cdef index_t n = 0
    cdef mask_t* lat
    cdef rules_t failed = 0
    cdef bint any_region = False
    cdef object value
    ps.requirement = requirement
    ps.columns = columns
    ps.default_health = default_health
    ps.vocab_version = v.version
    ps.wr, ps.wk, ps.wf = wr, wk, v.wf

    s.min_w = perf.min_write_rps if perf is not None else 0.0
    s.min_r = perf.min_read_rps if perf is not None else 0.0
    value = requirement.min_storage
    if value is None and perf is not None:
        value = perf.min_storage
    s.min_storage = value if value is not None else 0.0
    value = perf.max_latency_p99 if perf is not None else None
    s.max_lat_ms = value if value is not None else INFINITY
    value = requirement.min_connections
    s.min_conn = value if value is not None else 0.0
    _prepare_capability_bounds(s, perf)

    # The per-capability bounds apply to required capabilities.
    lat = lat_mask if s.max_lat_ms < INFINITY or s.cap_rules else NULL
    for item in ifcs:
        failed |= _require(v.feature_bit(v.ifc_bits, item, False), RULE_MISSING_INTERFACE, tokens, rules, &n, NULL)
    for item in caps:
        failed |= _require(v.feature_bit(v.cap_bits, item, True), RULE_MISSING_CAPABILITY, tokens, rules, &n, lat)
    if txn:
        failed |= _require(v.txn_bit, RULE_MISSING_CAPABILITY, tokens, rules, &n, lat)
    s.n_req = n
    s.req_tokens = tokens
    s.req_rule = rules
    s.lat_all = len(caps) + txn == 0
    s.lat_mask = lat_mask

    value = requirement.regions
    s.region_filter = value is not None
    if value is not None:
        for name in value:
            found = v.regions.get(name)
            if found is not None:
                _set_bit(region_any, found)
                any_region = True
        if not any_region:
            failed |= RULE_REGION
    s.region_any = region_any
    value = requirement.compliance
    s.compliance_filter = bool(value)
    if value:
        for name in value:
            found = v.compliance.get(name)
            if found is None:
                failed |= RULE_COMPLIANCE
            else:
                _set_bit(compliance_all, found)
    s.compliance_all = compliance_all

    value = requirement.backend_types
    s.type_mask = v.all_types if value is None else _code_mask(v.type_code, value, "backend_types")
    value = requirement.health_statuses
    s.health_mask = default_health_mask if value is None else \
        _code_mask(v.health_code, value, "health_statuses")
    value = requirement.consistency
    if value is None:
        s.max_consistency = v.unknown_consistency
    else:
        found = v.consistency_code.get(value)
        if found is None:
            raise _error(f"Expected one of {', '.join('`%s`' % c for c in v.consistency_code)}, "
                         f"got `{str(value)[:40]}`", "slot consistency")
        s.max_consistency = found
    value = requirement.preferred_region
    s.pref_region = v.regions.get(value, -1) if isinstance(value, str) and value else -1
    _prepare_preferences(ps, v, requirement)
    s.max_per_backend = _limit(requirement.max_per_backend)
    s.max_per_region = _limit(requirement.max_per_region)
    s.max_skew = _limit(requirement.max_skew)
    s.current_pos = -1
    value = requirement.current_backend
    if value is not None:
        ps.sticky = True
        ps.positions_version = positions_version
        if core is not None:
            s.current_pos = core.index.get(value, -1)
    s.always_failed = failed
    return ps
