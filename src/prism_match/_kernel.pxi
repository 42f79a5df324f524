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
    #else
    static inline int pm_ctz64(unsigned long long x) { return __builtin_ctzll(x); }
    #endif
    """
    int pm_ctz64(unsigned long long x) noexcept nogil


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
    index_t pref_region             # region bit, or -1


cdef struct Policy:
    score_t w_perf, w_cost, w_avail, w_region, cap
    bint available_basis


cdef struct Placed:                  # capacity consumed by an assignment so far (NULL: none)
    const score_t* w
    const score_t* r
    const score_t* storage
    const score_t* ns


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
    cdef bint left = p.available_basis or pl != NULL
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
    if pl != NULL and r.max_ns[i] - r.ns_count[i] - (pl.ns[i] if pl.ns != NULL else 0.0) < 1:
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
        if isnan(r.max_conn[i]) or (_headroom(r.max_conn[i], r.cur_conn[i], NULL, i)
                                    if left else r.max_conn[i]) < s.min_conn:
            failed |= RULE_CONNECTIONS
            if not every:
                return failed
    if s.max_lat_ms < INFINITY:
        for e in range(r.lat_start[i], r.lat_stop[i]):
            if (s.lat_all or _bit(s.lat_mask, r.lat_token[e]) or _bit(s.lat_mask, r.lat_vtoken[e])) \
                    and r.lat_p99[e] > s.max_lat_ms:
                failed |= RULE_LATENCY
                break
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


cdef inline score_t _perf_upper(const Slot* s, const Policy* p, score_t max_w, score_t max_r) noexcept nogil:
    """An upper bound of the performance term of any backend whose maximum
    capacities are at most (max_w, max_r): headroom never exceeds the
    maximum (usage and placed amounts are >= 0), and division and min are
    monotonic in floats. Every new performance strategy bounds itself here."""
    cdef score_t perf = p.cap
    if s.min_w > 0 and max_w / s.min_w < perf:
        perf = max_w / s.min_w
    if s.min_r > 0 and max_r / s.min_r < perf:
        perf = max_r / s.min_r
    return perf


cdef inline score_t _score_upper(const Slot* s, const Policy* p, score_t perf, score_t cost, score_t avail,
                                 score_t region) noexcept nogil:
    """An upper bound of ``_score`` given upper bounds of its terms, in the
    same operation order (rounding is monotonic, so the bound holds in
    floats). Every new score term adds its own maximum here."""
    return p.w_perf * perf + p.w_cost * cost + p.w_avail * avail + p.w_region * region


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
