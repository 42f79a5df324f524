# The kernel: structs, the rule checks, the score, the bounded top-k heap and
# the diagnosis pass. `noexcept nogil`, no Python objects, no checks: the
# Python layer validated everything once. Included by _core.pyx.
#
# Positions: a backend lives at a position < n; removed backends leave holes
# that `alive` masks out (and a later add may fill). Every loop over backends
# walks the live bits of `alive` AND the slot's feature rows, 64 at a time.

cdef extern from *:
    """
    #if defined(_MSC_VER)
    #include <intrin.h>
    static inline int pm_ctz64(unsigned long long x) { unsigned long i; _BitScanForward64(&i, x); return (int)i; }
    static inline int pm_clz64(unsigned long long x) { unsigned long i; _BitScanReverse64(&i, x); return 63 - (int)i; }
    static inline int pm_popcount64(unsigned long long x) { return (int)__popcnt64(x); }
    #else
    static inline int pm_ctz64(unsigned long long x) { return __builtin_ctzll(x); }
    static inline int pm_clz64(unsigned long long x) { return __builtin_clzll(x); }
    #if defined(__POPCNT__)
    static inline int pm_popcount64(unsigned long long x) { return __builtin_popcountll(x); }
    #else
    /* Without -mpopcnt the builtin is a call into libgcc; the same bit
       arithmetic inline instead. */
    static inline int pm_popcount64(unsigned long long x) {
        x = x - ((x >> 1) & 0x5555555555555555ULL);
        x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
        x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
        return (int)((x * 0x0101010101010101ULL) >> 56);
    }
    #endif
    #endif
    /* Hints that *p will be read (pm_prefetch) or written (pm_prefetch_w)
       soon; nothing on compilers without them. The living registry's
       changes use them (with a list's item: pm_list_item_at, the address
       of item i; pm_prefetch_list_item, the object there) to ask at once
       for memory last touched long ago, so its misses overlap. */
    #if defined(__GNUC__) || defined(__clang__)
    #define pm_prefetch(p) __builtin_prefetch((const void*)(p))
    #define pm_prefetch_w(p) __builtin_prefetch((const void*)(p), 1)
    #else
    #define pm_prefetch(p) ((void)(p))
    #define pm_prefetch_w(p) ((void)(p))
    #endif
    #define pm_list_item_at(L, i) (&((PyListObject*)(L))->ob_item[i])
    #define pm_prefetch_list_item(L, i) pm_prefetch_w(((PyListObject*)(L))->ob_item[i])
    """
    void pm_prefetch(const void* p) noexcept nogil
    void pm_prefetch_w(const void* p) noexcept nogil
    # The address of a list's item ``i`` (< its length), to prefetch.
    const void* pm_list_item_at(list L, Py_ssize_t i) noexcept
    # Ask for the object at item ``i`` (< its length) of a list, to write
    # (its reference count is about to change).
    void pm_prefetch_list_item(list L, Py_ssize_t i) noexcept
    int pm_ctz64(unsigned long long x) noexcept nogil  # x != 0
    int pm_clz64(unsigned long long x) noexcept nogil  # x != 0
    int pm_popcount64(unsigned long long x) noexcept nogil


cdef struct Reg:
    index_t n                       # positions in use (holes included)
    index_t nw                      # words covering n positions
    index_t stride                  # words per feature row (its capacity, >= nw)
    index_t wr, wk                  # words of a region / compliance row
    const mask_t* alive             # [>= nw]: live positions
    const mask_t* feature_bits      # [Tf, stride]
    const mask_t* region_rows       # [n, wr]
    const mask_t* compliance_rows   # [n, wk]
    const code_t* btype
    const code_t* health
    const code_t* consistency
    const score_t* max_w
    const score_t* max_r
    const score_t* cur_w            # usage: observed + reserved (see CoreRegistry)
    const score_t* cur_r
    const score_t* max_storage
    const score_t* storage_used
    const score_t* max_ns
    const score_t* ns_count
    const score_t* max_conn         # NaN: not declared
    const score_t* cur_conn
    const score_t* cost_score
    const score_t* avail_score
    const index_t* id_rank          # order labels: byte order of backend_id
    const index_t* lat_start        # [n]: entries of backend i are lat_start[i]:lat_stop[i]
    const index_t* lat_stop
    const index_t* lat_token
    const index_t* lat_vtoken
    const score_t* lat_p99
    const score_t* open_incidents   # [n]: incidents without resolved_at
    # The rest of an entry (issue 13's per-capability performance): NaN when
    # unstated; lat_batch -1 unstated, 0 no, 1 yes.
    const score_t* lat_p50
    const score_t* lat_p95
    const score_t* lat_p999
    const score_t* lat_max_w
    const score_t* lat_max_r
    const signed char* lat_batch
    const score_t* lat_max_batch
    const score_t* lat_conc


cdef struct Slot:
    rules_t always_failed           # rules every backend fails (a name no backend knows)
    index_t n_req
    const index_t* req_tokens       # feature rows to AND
    const index_t* req_rule         # the rule each token belongs to (interface or capability bit)
    bint region_filter
    const mask_t* region_any        # [wr]
    bint compliance_filter
    const mask_t* compliance_all    # [wk]
    unsigned int type_mask
    unsigned int health_mask
    int max_consistency
    score_t min_w, min_r, min_storage, max_lat_ms, min_conn
    bint lat_all
    const mask_t* lat_mask          # [wf]
    index_t pref_region             # region bit, or -1 (ranked list: the first one known)
    # Issue 13's opt-in terms and rules; each is inert at its zero value.
    index_t n_pref                  # ranked preferred regions known to the registry (0: pref_region alone)
    const index_t* pref_bits        # [n_pref]: their region bits, in rank order
    const score_t* pref_value       # [n_pref]: region term of each, (L - rank) / L for a list of L
    index_t n_aff                   # preferred terms (node affinity's "preferred")
    const index_t* aff_kind         # [n_aff]: AFF_TYPE (a backend type code) or AFF_TAG (a compliance bit, -1 unknown)
    const index_t* aff_code
    const score_t* aff_weight       # [n_aff]: the term's weight
    score_t aff_total               # sum of every term's weight (> 0 when n_aff > 0)
    index_t current_pos             # stickiness: position of the slot's current backend, or -1
    score_t max_per_backend         # group limits, INFINITY: none
    score_t max_per_region
    score_t max_skew
    # Per-capability performance (issue 13), over the entries lat_mask (or
    # lat_all) makes relevant; cap_rules: any of them is set.
    bint cap_rules
    score_t max_p50, max_p95, max_p999  # INFINITY: no bound
    bint needs_batch                # requires_batch or min_batch_size
    score_t min_batch               # 0: no size asked
    score_t min_conc                # 0: no bound
    bint cap_throughput             # per_capability_throughput


cdef struct Policy:
    score_t w_perf, w_cost, w_avail, w_region, cap
    bint available_basis
    bint binpack                    # performance term: fullness after placement (else headroom)
    score_t w_affinity              # weight of the preferred-terms score
    score_t degraded_penalty        # subtracted from a degraded backend's score
    score_t stickiness              # added to the slot's current backend's score (hysteresis)
    score_t incident_penalty        # subtracted from the score of a backend with an open incident


cdef enum:
    AFF_TYPE = 0
    AFF_TAG = 1
    HEALTH_DEGRADED = 1             # compiled.HEALTH_CODE["degraded"]


cdef struct Placed:                  # capacity consumed by an assignment so far (NULL: none)
    const score_t* w
    const score_t* r
    const score_t* storage
    const score_t* ns
    const score_t* conn
    # The slot's group (anti-affinity, spread): its placements per backend
    # ([n]) and per region bit ([wr * 64]); NULL: no group rule applies.
    const score_t* grp_backend
    const score_t* grp_region
    score_t domain_min              # fewest group placements in a region of an eligible backend
    bint bind_only                  # binding a pattern: group rules only, no capacity consumed


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


cdef inline rules_t _failed(const Reg* r, const Slot* s, const Policy* p, const Placed* pl,
                            index_t i, bint every) noexcept nogil:
    """The rules of rules.RULES that backend i fails, past the feature rows
    (rules 1-2 are the caller's AND): with ``every`` False, stops at the
    first (a match needs only to know whether), else collects all (a
    diagnosis). The namespace rule applies while placing (``pl``)."""
    cdef index_t e, w
    cdef bint hit
    cdef bint placing = pl != NULL and not pl.bind_only
    cdef bint left = p.available_basis or placing
    cdef rules_t failed = 0
    if not ((s.health_mask >> r.health[i]) & 1):
        failed |= RULE_HEALTH
        if not every:
            return failed
    if not ((s.type_mask >> r.btype[i]) & 1):
        failed |= RULE_BACKEND_TYPE
        if not every:
            return failed
    if left:
        if _headroom(r.max_w[i], r.cur_w[i], pl.w if pl != NULL else NULL, i) < s.min_w:
            failed |= RULE_WRITE_CAPACITY
            if not every:
                return failed
        if _headroom(r.max_r[i], r.cur_r[i], pl.r if pl != NULL else NULL, i) < s.min_r:
            failed |= RULE_READ_CAPACITY
            if not every:
                return failed
    else:
        if r.max_w[i] < s.min_w:
            failed |= RULE_WRITE_CAPACITY
            if not every:
                return failed
        if r.max_r[i] < s.min_r:
            failed |= RULE_READ_CAPACITY
            if not every:
                return failed
    if s.min_storage > 0:
        # A backend without max_storage (NaN) fails any positive minimum.
        if isnan(r.max_storage[i]) or (
                _headroom(r.max_storage[i], r.storage_used[i], pl.storage if pl != NULL else NULL, i)
                if left else r.max_storage[i]) < s.min_storage:
            failed |= RULE_STORAGE
            if not every:
                return failed
    if placing and r.max_ns[i] - r.ns_count[i] - (pl.ns[i] if pl.ns != NULL else 0.0) < 1:
        failed |= RULE_NAMESPACES
        if not every:
            return failed
    if r.consistency[i] > s.max_consistency:
        failed |= RULE_CONSISTENCY
        if not every:
            return failed
    if s.region_filter:
        hit = False
        for w in range(r.wr):
            if r.region_rows[i * r.wr + w] & s.region_any[w]:
                hit = True
                break
        if not hit:
            failed |= RULE_REGION
            if not every:
                return failed
    if s.compliance_filter:
        for w in range(r.wk):
            if (r.compliance_rows[i * r.wk + w] & s.compliance_all[w]) != s.compliance_all[w]:
                failed |= RULE_COMPLIANCE
                if not every:
                    return failed
                break
    if s.min_conn > 0:
        # Like storage: a backend that declares no max_connections fails.
        if isnan(r.max_conn[i]) or (_headroom(r.max_conn[i], r.cur_conn[i], pl.conn if placing else NULL, i)
                                    if left else r.max_conn[i]) < s.min_conn:
            failed |= RULE_CONNECTIONS
            if not every:
                return failed
    if pl != NULL and pl.grp_backend != NULL:
        failed |= _group_failed(r, s, pl, i, every)
        if failed and not every:
            return failed
    if s.max_lat_ms < INFINITY:
        for e in range(r.lat_start[i], r.lat_stop[i]):
            if (s.lat_all or _bit(s.lat_mask, r.lat_token[e]) or _bit(s.lat_mask, r.lat_vtoken[e])) \
                    and r.lat_p99[e] > s.max_lat_ms:
                failed |= RULE_LATENCY
                break
    if s.cap_rules:
        failed |= _capability_failed(r, s, i)
    return failed


cdef inline rules_t _capability_failed(const Reg* r, const Slot* s, index_t i) noexcept nogil:
    """Issue 13's per-capability rules over backend i's relevant entries
    (those of a required capability, or every one when the slot requires
    none). A latency or throughput an entry does not state passes; batch
    and concurrency must be proven: a relevant entry that does not state
    them fails, and so does a required capability with no entry at all (a
    slot requiring none: a backend with no entry)."""
    cdef rules_t failed = 0
    cdef rules_t proven = (RULE_BATCH if s.needs_batch else 0) | (RULE_CONCURRENCY if s.min_conc > 0 else 0)
    cdef index_t e, j, k
    cdef bint found, any_entry = False
    for e in range(r.lat_start[i], r.lat_stop[i]):
        if not (s.lat_all or _bit(s.lat_mask, r.lat_token[e]) or _bit(s.lat_mask, r.lat_vtoken[e])):
            continue
        any_entry = True
        # NaN (unstated) compares false: it passes.
        if r.lat_p50[e] > s.max_p50 or r.lat_p95[e] > s.max_p95 or r.lat_p999[e] > s.max_p999:
            failed |= RULE_LATENCY_PERCENTILE
        if s.needs_batch and (r.lat_batch[e] != 1 or (s.min_batch > 0 and not (r.lat_max_batch[e] >= s.min_batch))):
            failed |= RULE_BATCH
        if s.min_conc > 0 and not (r.lat_conc[e] >= s.min_conc):
            failed |= RULE_CONCURRENCY
        if s.cap_throughput and (r.lat_max_w[e] < s.min_w or r.lat_max_r[e] < s.min_r):
            failed |= RULE_CAPABILITY_THROUGHPUT
    if proven and (failed & proven) != proven:
        # Coverage: a declared required capability with no entry states
        # nothing, so it proves nothing.
        if s.lat_all:
            if not any_entry:
                failed |= proven
        else:
            for j in range(s.n_req):
                if s.req_rule[j] != RULE_MISSING_CAPABILITY:
                    continue
                k = s.req_tokens[j]
                if not ((r.feature_bits[k * r.stride + (i >> 6)] >> (i & 63)) & 1):
                    continue  # not declared: missing_capability's to say
                found = False
                for e in range(r.lat_start[i], r.lat_stop[i]):
                    if r.lat_token[e] == k or r.lat_vtoken[e] == k:
                        found = True
                        break
                if not found:
                    failed |= proven
                    break
    return failed


cdef inline rules_t _group_failed(const Reg* r, const Slot* s, const Placed* pl, index_t i,
                                  bint every) noexcept nogil:
    """The group rules: at most ``max_per_backend`` of the group on one
    backend, ``max_per_region`` in one region, and a region skew of at most
    ``max_skew`` (a placement counts in every region its backend serves; a
    backend serving no region is outside every domain, so the skew rule
    rejects it and the region cap does not apply)."""
    cdef rules_t failed = 0
    cdef index_t w, b
    cdef mask_t word
    cdef bint any_region = False
    cdef score_t count
    if pl.grp_backend[i] >= s.max_per_backend:
        failed |= RULE_GROUP_BACKEND
        if not every:
            return failed
    if s.max_per_region < INFINITY or s.max_skew < INFINITY:
        for w in range(r.wr):
            word = r.region_rows[i * r.wr + w]
            while word:
                b = (w << 6) + pm_ctz64(word)
                word &= word - 1
                any_region = True
                count = pl.grp_region[b]
                if count >= s.max_per_region:
                    failed |= RULE_GROUP_REGION
                if count + 1 - pl.domain_min > s.max_skew:
                    failed |= RULE_GROUP_SKEW
        if s.max_skew < INFINITY and not any_region:
            failed |= RULE_GROUP_SKEW
    return failed


cdef inline bint _eligible(const Reg* r, const Slot* s, const Policy* p, const Placed* pl,
                           index_t i) noexcept nogil:
    return _failed(r, s, p, pl, i, False) == 0


cdef inline void _components(const Reg* r, const Slot* s, const Policy* p, const Placed* pl, index_t i,
                             score_t* perf, score_t* region, score_t* avail_w, score_t* avail_r) noexcept nogil:
    """SPEC §4's performance and region terms, and the headroom they used."""
    cdef score_t aw = _headroom(r.max_w[i], r.cur_w[i], pl.w if pl != NULL else NULL, i)
    cdef score_t ar = _headroom(r.max_r[i], r.cur_r[i], pl.r if pl != NULL else NULL, i)
    cdef score_t rw, rr
    rw = aw / s.min_w if s.min_w > 0 else p.cap
    rr = ar / s.min_r if s.min_r > 0 else p.cap
    cdef index_t j
    if p.binpack:
        perf[0] = _binpack(r, s, p, pl, i)
    else:
        perf[0] = rw if rw < rr else rr
        if p.cap < perf[0]:
            perf[0] = p.cap
    if s.n_pref > 0:
        # A ranked list: the best-ranked region the backend serves.
        region[0] = 0.0
        for j in range(s.n_pref):
            if _bit(r.region_rows + i * r.wr, s.pref_bits[j]):
                region[0] = s.pref_value[j]
                break
    else:
        region[0] = 1.0 if (s.pref_region >= 0 and _bit(r.region_rows + i * r.wr, s.pref_region)) else 0.0
    avail_w[0] = aw
    avail_r[0] = ar


cdef inline score_t _fullness(score_t mx, score_t cur, const score_t* placed, score_t need,
                              index_t i) noexcept nogil:
    # The share of one resource in use once the slot is placed, in [0, 1]; a
    # backend that declares no capacity (0) is not full of anything: 0.
    cdef score_t u = cur
    if placed != NULL:
        u = u + placed[i]
    u = u + need
    if not mx > 0:
        return 0.0
    u = u / mx
    return u if u < 1.0 else 1.0


cdef inline score_t _binpack(const Reg* r, const Slot* s, const Policy* p, const Placed* pl,
                             index_t i) noexcept nogil:
    """The binpack performance term (Kubernetes' MostAllocated, Nomad's
    binpack): ``cap * (fw + fr) / 2`` where ``fw`` is the write capacity in
    use once the slot is placed, ``(used + placed + min_write_rps) /
    max_write_rps`` clamped to [0, 1] (0 when no capacity is declared), and
    ``fr`` the same for reads. At most ``cap``."""
    cdef score_t fw = _fullness(r.max_w[i], r.cur_w[i], pl.w if pl != NULL else NULL, s.min_w, i)
    cdef score_t fr = _fullness(r.max_r[i], r.cur_r[i], pl.r if pl != NULL else NULL, s.min_r, i)
    return p.cap * ((fw + fr) * 0.5)


cdef inline score_t _affinity(const Reg* r, const Slot* s, index_t i) noexcept nogil:
    """The preferred-terms score in [0, 1]: the weights of the terms the
    backend meets (summed in the slot's order) over the weights of all."""
    cdef score_t acc = 0.0
    cdef index_t j, code
    cdef bint hit
    for j in range(s.n_aff):
        code = s.aff_code[j]
        if s.aff_kind[j] == AFF_TYPE:
            hit = r.btype[i] == code
        else:
            hit = code >= 0 and _bit(r.compliance_rows + i * r.wk, code)
        if hit:
            acc = acc + s.aff_weight[j]
    return acc / s.aff_total


cdef inline score_t _score(const Reg* r, const Slot* s, const Policy* p, index_t i, score_t perf,
                           score_t region) noexcept nogil:
    # One fixed operation order (and no FMA contraction, see setup.py) so every
    # path computes the same bits. The opt-in terms are added only when in use,
    # so the default policy computes exactly SPEC §4's sum.
    cdef score_t sc = p.w_perf * perf + p.w_cost * r.cost_score[i] + p.w_avail * r.avail_score[i] \
        + p.w_region * region
    if s.n_aff > 0:
        sc = sc + p.w_affinity * _affinity(r, s, i)
    if i == s.current_pos:
        sc = sc + p.stickiness
    if p.degraded_penalty > 0 and r.health[i] == HEALTH_DEGRADED:
        sc = sc - p.degraded_penalty
    if p.incident_penalty > 0 and r.open_incidents[i] > 0:
        sc = sc - p.incident_penalty
    return sc


cdef inline score_t _perf_upper(const Slot* s, const Policy* p, score_t max_w, score_t max_r) noexcept nogil:
    """An upper bound of the performance term of any backend whose maximum
    capacities are at most (max_w, max_r): headroom never exceeds the
    maximum (usage and placed amounts are >= 0), and division and min are
    monotonic in floats. Every new performance strategy bounds itself here:
    binpack's term is at most ``cap`` (its shares are clamped to 1)."""
    cdef score_t perf = p.cap
    if p.binpack:
        return perf
    if s.min_w > 0 and max_w / s.min_w < perf:
        perf = max_w / s.min_w
    if s.min_r > 0 and max_r / s.min_r < perf:
        perf = max_r / s.min_r
    return perf


cdef inline score_t _score_upper(const Slot* s, const Policy* p, score_t perf, score_t cost, score_t avail,
                                 score_t region) noexcept nogil:
    """An upper bound of ``_score`` given upper bounds of its terms, in the
    same operation order (rounding is monotonic, so the bound holds in
    floats). Every new score term adds its own maximum here: the preferred
    terms at most 1 (a subset of the weights over all of them), stickiness
    its margin; the degraded penalty only lowers a score."""
    cdef score_t sc = p.w_perf * perf + p.w_cost * cost + p.w_avail * avail + p.w_region * region
    if s.n_aff > 0:
        sc = sc + p.w_affinity * 1.0
    if s.current_pos >= 0:
        sc = sc + p.stickiness
    return sc


cdef inline mask_t _candidates(const Reg* r, const Slot* s, index_t w) noexcept nogil:
    """Word ``w`` of the live backends that hold every required feature."""
    cdef mask_t word = r.alive[w]
    cdef index_t j
    for j in range(s.n_req):
        word &= r.feature_bits[s.req_tokens[j] * r.stride + w]
    return word


cdef index_t topk_scores(const Reg* r, const Slot* s, const Policy* p, const Placed* pl, index_t k,
                         score_t* hs, index_t* hr, index_t* hi) noexcept nogil:
    """Best k eligible backends into (hs, hr, hi) = (score, id rank, index),
    best first; returns how many. Buffers hold k entries."""
    cdef index_t size = 0, w, i, last
    cdef mask_t word
    cdef score_t perf, region, aw, ar, sc, bound
    cdef score_t region_max = 1.0 if s.pref_region >= 0 else 0.0
    cdef score_t ts
    cdef index_t tr, ti
    if s.always_failed or k <= 0 or r.n == 0:
        return 0
    for w in range(r.nw):
        word = _candidates(r, s, w)
        while word:
            i = (w << 6) + pm_ctz64(word)
            word &= word - 1
            if size == k:
                # Prune before touching the rest of the row: the score can be no
                # higher than with the headroom at the maximum capacity and the
                # region term won (_score_upper).
                bound = _score_upper(s, p, _perf_upper(s, p, r.max_w[i], r.max_r[i]), r.cost_score[i],
                                     r.avail_score[i], region_max)
                if bound < hs[0] or (bound == hs[0] and r.id_rank[i] > hr[0]):
                    continue
            if not _eligible(r, s, p, pl, i):
                continue
            _components(r, s, p, pl, i, &perf, &region, &aw, &ar)
            sc = _score(r, s, p, i, perf, region)
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


cdef inline rules_t _backend_failures(const Reg* r, const Slot* s, const Policy* p, const Placed* pl,
                                     index_t i) noexcept nogil:
    """Every rule backend i fails: the names no backend knows, the feature
    rows it lacks, and the rest (``_failed`` collecting all)."""
    cdef index_t j
    cdef rules_t f = s.always_failed
    for j in range(s.n_req):
        if not _bit(r.feature_bits + s.req_tokens[j] * r.stride, i):
            f |= <rules_t>s.req_rule[j]
    return f | _failed(r, s, p, pl, i, True)


cdef index_t failure_bits(const Reg* r, const Slot* s, const Policy* p, const Placed* pl,
                          rules_t* out, index_t* counts) noexcept nogil:
    """Every failed rule of every live backend: ``out[i]`` (0 for eligible
    backends and holes), ``counts[b]`` backends failing the rule of bit b;
    returns how many live backends are eligible. One pass, for explain,
    check_binding and the assign diagnosis."""
    cdef index_t w, i, b, eligible = 0
    cdef mask_t word
    cdef rules_t f
    for i in range(r.n):
        out[i] = 0
    for w in range(r.nw):
        word = r.alive[w]
        while word:
            i = (w << 6) + pm_ctz64(word)
            word &= word - 1
            f = _backend_failures(r, s, p, pl, i)
            out[i] = f
            if f == 0:
                eligible += 1
            else:
                for b in range(N_RULES):
                    counts[b] += (f >> b) & 1
    return eligible


cdef score_t domain_min(const Reg* r, const Slot* s, const Policy* p, const Placed* pl,
                        mask_t* domains) noexcept nogil:
    """The fewest group placements in one region among the regions of the
    backends that pass every other rule (topology spread's domains; a region
    whose backends are all full or filtered out does not hold the spread
    back). ``domains``: scratch of ``r.wr`` words. 0 when no region qualifies."""
    cdef Placed free = pl[0]
    cdef index_t w, i, b
    cdef mask_t word
    cdef score_t low = INFINITY
    free.grp_backend = NULL  # the group rules off: domains come from the others
    free.grp_region = NULL
    for w in range(r.wr):
        domains[w] = 0
    if s.always_failed:
        return 0.0
    for w in range(r.nw):
        word = _candidates(r, s, w)
        while word:
            i = (w << 6) + pm_ctz64(word)
            word &= word - 1
            if _failed(r, s, p, &free, i, False) == 0:
                for b in range(r.wr):
                    domains[b] |= r.region_rows[i * r.wr + b]
    for w in range(r.wr):
        word = domains[w]
        while word:
            b = (w << 6) + pm_ctz64(word)
            word &= word - 1
            if pl.grp_region[b] < low:
                low = pl.grp_region[b]
    return low if low < INFINITY else 0.0


cdef inline void count_group(const Reg* r, score_t* grp_backend, score_t* grp_region, index_t i) noexcept nogil:
    """One more placement of the group on backend i (and in each of its regions)."""
    cdef index_t w, b
    cdef mask_t word
    grp_backend[i] += 1
    for w in range(r.wr):
        word = r.region_rows[i * r.wr + w]
        while word:
            b = (w << 6) + pm_ctz64(word)
            word &= word - 1
            grp_region[b] += 1
