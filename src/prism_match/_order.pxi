# The scan order: top-k that skips what cannot win. Included by _core.pyx.
#
# Positions (the columns, Match.index, every answer) keep their order. Beside
# them, ScanOrder lays the backends out by the part of the score no slot
# changes (w_cost * cost + w_avail * avail, best first; ties by backend_id
# order), as a permutation ``perm`` (scan slot -> position) with its inverse.
# In scan order it keeps:
#   * bit rows for every categorical rule: the feature tokens (AND), backend
#     type, health status (OR of the allowed codes), consistency (one
#     "at most level c" row per level), regions (OR of the listed) and
#     compliance tags (AND), so a slot's candidates come 64 at a time;
#   * bounds per 64-slot word and per block of words (64 by default): the maxima
#     of cost_score, avail_score, max_write_rps and max_read_rps.
# A word or block is skipped when a slot's minimum capacity exceeds its
# maximum capacity, or when its score bound (_score_upper of the maxima) is
# strictly below the heap's worst kept score: every backend inside scores at
# most the bound, so none can enter. Equal bounds are scanned (the
# per-backend check then decides ties by id rank), so exact ties stay exact.
#
# Rows are pre-filters only: a survivor still passes the whole of ``_failed``,
# so a row that is missing (regions or compliance over the memory budget, a
# slot listing more names than MAX_LISTED) costs speed, never correctness.
# The same for bounds: live changes only raise them (constant time), and a
# stale bound is loose, never wrong; they are recomputed exactly when cheap
# (when a batch snapshots the columns, and on every rebuild). The least id
# ranks are kept exact, since ties prune by them: when the backend holding
# a word's least rank leaves it (removed, moved, relabelled), the word's is
# taken again from its live slots, and its block's from its words.
#
# Live changes: an added backend takes a free scan slot where a fresh order
# would put it: a binary search on the slots' keys finds the run of its
# key, one on the words' least ranks the word of its id within the run,
# and ``free_words`` the nearest free slot in or beside the run, 64 words
# at a time. Free slots are a removed backend's, or the gaps the order
# leaves when it is built: the last slot of every word (GAP_EVERY,
# ``gap_every``; a slot with no position, perm -1), so every run has free
# slots of its own spread through it and an add with a random key moves
# nothing (without them, in a churn where a random backend leaves and one
# joins, the only free slot is the one just left, in another run: every
# add cascaded, 30-60 us at 100,000 backends). When the run is full, a cascade
# frees the slot beside it: one backend of each run of keys between it and
# the nearest free slot moves to the other end of its run (at most
# _CASCADE runs, ``cascade_runs``), so the keys stay sorted slot by slot
# (ScanOrder._place). A move rewrites the slot's bit in every row (about
# 0.1 us on a registry with few names; the synthetic ones have 90 feature
# rows, each a cache miss at 100,000 backends). Reaching far matters when
# holes run out: the last adds of a churn find every hole near their run
# taken, and a backend put
# among lower keys instead raises its block's bounds, so every match whose
# threshold is under its key visits that block (after a 10% churn, a top-5
# took 1.15x a fresh registry's with a reach of 16 runs; the same as fresh
# with 64, at 100,000 and 1,000,000 backends).
# Every position has one scan slot (the slot taken is swapped with the one
# its position held; a new position first takes a new last slot); the
# slots with none, ``extra_slots`` of them, stay so many (the arrays hold
# the positions' room plus them).
# So a registry that loses and gains backends keeps its words and blocks
# sorted for their bounds to prune. One that grows with no hole to fill
# puts what no cascade reaches beside no run of its key (at the tail);
# once a sixteenth of the positions came that way, the order is built
# again. A removed backend clears its alive bit; a replaced one rewrites its
# bits; an update of status flips two bits, of uptime raises a bound.

cdef enum:
    BLOCK_WORDS = 64        # words per block by default: 4,096 scan slots
    RELAYOUT_MIN = 256      # misplaced adds that never make the order be built again (nor a sixteenth of the positions)
    MAX_LISTED = 32         # region / compliance names a slot may list and still be filtered as rows
    _COMPACT_FREE = 16      # a run with a free slot in every _COMPACT_FREE is laid out again before a late id goes in
    _COMPACT_MIN = 256      # ... when it spans that many slots (a shorter one costs little out of order)
    _COVER_TRIES = 16       # words with a free slot an add beside no run of its key looks at for one whose bounds cover it
    _CASCADE = 64           # runs of keys an added backend's cascade moves one backend each of, at most
    GAP_EVERY = 64          # one scan slot in so many is left free when the order is built (one a word)

cdef index_t _NO_RANK = 0x7FFFFFFFFFFFFFFF  # a word with no backend: every rank is after it

SCAN_CASCADE_RUNS = _CASCADE  # how far a cascade reaches by default, in runs of keys (ScanOrder.cascade_runs)
SCAN_GAP_EVERY = GAP_EVERY    # one scan slot in so many is left free when the order is built

# Region and compliance rows cost (names x backends / 8) bytes each; past
# this they are not kept and the per-backend check does their work.
DEF _ROW_BUDGET = 64 * 1024 * 1024


cdef struct Order:
    index_t stride                  # words per row (capacity)
    index_t nw                      # words of scan slots in use: (n_slots + 63) / 64
    const index_t* perm             # [>= n]: scan slot -> position
    const index_t* srank            # [>= n]: scan slot -> its backend's id rank (live slots)
    const mask_t* alive             # [stride]
    const mask_t* features          # [Tf, stride]
    const mask_t* btype             # [n_type, stride]
    const mask_t* health            # [n_health, stride]
    const mask_t* cons_le           # [n_cons, stride]: consistency code <= row
    const mask_t* ns_room           # [stride]: room for one more namespace (max_namespaces - used >= 1)
    const mask_t* regions           # [n_regions, stride] (NULL: not kept)
    const mask_t* compliance        # [n_compliance, stride] (NULL: not kept)
    index_t n_features              # feature tokens in use (rows may be more)
    index_t n_type, n_health, n_cons, n_regions, n_compliance
    const score_t* word_bounds      # [4, stride]: max cost, avail, max_w, max_r
    const score_t* block_bounds     # [4, stride / block_words + 1]
    const index_t* word_rank        # [stride]: the least id rank inside
    const index_t* block_rank       # [stride / block_words + 1]
    index_t block_stride
    index_t block_words             # words per block


cdef struct Filter:
    # A slot's categorical rules as lists of rows (computed once per match).
    bint empty                      # no backend can pass (no allowed type or status)
    index_t n_types, n_health, n_regions, n_compliance
    index_t cons                    # consistency row, or -1: no filter
    index_t types[32]
    index_t health[32]
    index_t regions[MAX_LISTED]
    index_t compliance[MAX_LISTED]
    index_t pref                    # preferred region row, or -1 (no split)
    bint placing                    # the namespace rule applies (reserve, assign): ns_room filters


cdef inline index_t _listed(const mask_t* words, index_t nwords, index_t limit, index_t* out) noexcept nogil:
    # The set bits of ``words`` (all < limit) into out; -1 when there are
    # more than MAX_LISTED or one is past ``limit`` (no row for it).
    cdef index_t w, b, n = 0
    cdef mask_t word
    for w in range(nwords):
        word = words[w]
        while word:
            b = (w << 6) + pm_ctz64(word)
            word &= word - 1
            if b >= limit or n == MAX_LISTED:
                return -1
            out[n] = b
            n += 1
    return n


cdef inline void _filter(const Reg* r, const Order* o, const Slot* s, const Policy* p, Filter* f) noexcept nogil:
    cdef index_t c, n
    cdef unsigned int all_types = (1u << o.n_type) - 1
    cdef unsigned int all_health = (1u << o.n_health) - 1
    f.empty = (s.type_mask & all_types) == 0 or (s.health_mask & all_health) == 0
    f.n_types = 0
    if (s.type_mask & all_types) != all_types:
        for c in range(o.n_type):
            if (s.type_mask >> c) & 1:
                f.types[f.n_types] = c
                f.n_types += 1
    f.n_health = 0
    if (s.health_mask & all_health) != all_health:
        for c in range(o.n_health):
            if (s.health_mask >> c) & 1:
                f.health[f.n_health] = c
                f.n_health += 1
    f.cons = s.max_consistency if s.max_consistency < o.n_cons - 1 else -1
    if f.cons < -1:
        f.empty = True
    f.n_regions = 0
    if s.region_filter and o.regions != NULL:
        n = _listed(s.region_any, r.wr, o.n_regions, f.regions)
        f.n_regions = n if n > 0 else 0
        if n == 0:
            f.empty = True  # a region filter naming no known region: nothing passes
    f.n_compliance = 0
    if s.compliance_filter and o.compliance != NULL:
        n = _listed(s.compliance_all, r.wk, o.n_compliance, f.compliance)
        f.n_compliance = n if n > 0 else 0
    f.pref = s.pref_region if (s.pref_region >= 0 and o.regions != NULL and s.pref_region < o.n_regions
                               and p.w_region > 0) else -1


cdef inline mask_t _ordered_candidates(const Order* o, const Slot* s, const Filter* f, index_t w) noexcept nogil:
    """Word ``w`` of the scan slots that are live and pass every categorical rule."""
    cdef mask_t word = o.alive[w], acc
    cdef index_t j, st = o.stride
    for j in range(s.n_req):
        word &= o.features[s.req_tokens[j] * st + w]
    if word == 0:
        return 0
    if f.n_types:
        acc = 0
        for j in range(f.n_types):
            acc |= o.btype[f.types[j] * st + w]
        word &= acc
    if f.n_health:
        acc = 0
        for j in range(f.n_health):
            acc |= o.health[f.health[j] * st + w]
        word &= acc
    if f.cons >= 0:
        word &= o.cons_le[f.cons * st + w]
    if f.placing:
        word &= o.ns_room[w]
    if word and f.n_regions:
        acc = 0
        for j in range(f.n_regions):
            acc |= o.regions[f.regions[j] * st + w]
        word &= acc
    if word and f.n_compliance:
        for j in range(f.n_compliance):
            word &= o.compliance[f.compliance[j] * st + w]
    return word


cdef inline bint _below(const Slot* s, const Policy* p, const score_t* bounds, const index_t* ranks,
                        index_t stride, index_t at, score_t region, index_t size, index_t k, const score_t* hs,
                        const index_t* hr) noexcept nogil:
    """Whether nothing in the word or block ``at`` (bounds rows of ``stride``)
    can be eligible and win: its maximum capacity is under the slot's
    minimum, or (the heap full) its score bound is below the worst kept
    score, or equal to it with every id rank inside after the worst's."""
    cdef score_t bound
    if bounds[2 * stride + at] < s.min_w or bounds[3 * stride + at] < s.min_r:
        return True
    if size < k:
        return False
    bound = _word_upper(s, p, bounds, stride, at, region)
    return bound < hs[0] or (bound == hs[0] and ranks[at] > hr[0])


cdef inline score_t _word_upper(const Slot* s, const Policy* p, const score_t* bounds, index_t stride, index_t at,
                                score_t region) noexcept nogil:
    """The score bound of the word or block ``at``: no backend inside scores more."""
    return _score_upper(s, p, _perf_upper(s, p, bounds[2 * stride + at], bounds[3 * stride + at]), bounds[at],
                        bounds[stride + at], region)


cdef inline index_t _scan_word(const Reg* r, const Order* o, const Slot* s, const Policy* p, const Placed* pl,
                               index_t k, mask_t word, index_t base, score_t region_max, index_t size,
                               score_t* hs, index_t* hr, index_t* hi) noexcept nogil:
    """Push the eligible backends of one candidate word (scan slots base+bit)
    through the heap; returns its new size."""
    cdef index_t i, b
    cdef score_t perf, region, aw, ar, sc, bound, word_bound = INFINITY
    cdef bint bounded = False
    while word:
        b = base + pm_ctz64(word)
        word &= word - 1
        if size == k:
            # The heap full and the word's bound no better than its worst: a
            # backend after the worst by id cannot enter, which the slot's
            # own rank tells without reading the backend's columns (in
            # position order, so a read each that misses the cache).
            if not bounded:
                word_bound = _word_upper(s, p, o.word_bounds, o.stride, base >> 6, region_max)
                bounded = True
            if word_bound <= hs[0] and o.srank[b] > hr[0]:
                continue
        i = o.perm[b]
        if size == k:
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
    return size


cdef index_t topk_ordered(const Reg* r, const Order* o, const Slot* s, const Policy* p, const Placed* pl,
                          index_t k, score_t* hs, index_t* hr, index_t* hi) noexcept nogil:
    """``topk_scores`` in scan order, skipping blocks and words that cannot
    win; the same answer (the heap orders by score, then id rank, whatever
    the order backends arrive in)."""
    cdef index_t size = 0, b, w, w_stop, last
    cdef mask_t word, pref
    cdef score_t region_max = 1.0 if s.pref_region >= 0 else 0.0
    # Outside the first preferred region, the region term is at most the
    # next ranked one's (0 without a ranked list).
    cdef score_t region_rest = s.pref_value[1] if s.n_pref > 1 else 0.0
    cdef score_t ts
    cdef index_t tr, ti
    cdef Filter f
    if s.always_failed or k <= 0 or r.n == 0:
        return 0
    _filter(r, o, s, p, &f)
    if f.empty:
        return 0
    f.placing = pl != NULL and not pl.bind_only
    for b in range((o.nw + o.block_words - 1) // o.block_words):
        if _below(s, p, o.block_bounds, o.block_rank, o.block_stride, b, region_max, size, k, hs, hr):
            continue
        w_stop = min((b + 1) * o.block_words, o.nw)
        for w in range(b * o.block_words, w_stop):
            if _below(s, p, o.word_bounds, o.word_rank, o.stride, w, region_max, size, k, hs, hr):
                continue
            word = _ordered_candidates(o, s, &f, w)
            if not word:
                continue
            if f.pref >= 0:
                # Preferred region first: the rest of the word then has its
                # region term bounded lower (region_rest).
                pref = word & o.regions[f.pref * o.stride + w]
                if pref:
                    size = _scan_word(r, o, s, p, pl, k, pref, w << 6, region_max, size, hs, hr, hi)
                word &= ~pref
                if not word or _below(s, p, o.word_bounds, o.word_rank, o.stride, w, region_rest, size, k, hs,
                                      hr):
                    continue
                size = _scan_word(r, o, s, p, pl, k, word, w << 6, region_rest, size, hs, hr, hi)
            else:
                size = _scan_word(r, o, s, p, pl, k, word, w << 6, region_max, size, hs, hr, hi)
    last = size - 1
    while last > 0:
        ts = hs[0]; hs[0] = hs[last]; hs[last] = ts
        tr = hr[0]; hr[0] = hr[last]; hr[last] = tr
        ti = hi[0]; hi[0] = hi[last]; hi[last] = ti
        _sift_down(hs, hr, hi, last, 0)
        last -= 1
    return size


# --- keeping the order ---------------------------------------------------------------------

cdef inline void _raise(score_t* bounds, index_t* ranks, index_t stride, index_t at, score_t cost, score_t avail,
                        score_t max_w, score_t max_r, index_t rank) noexcept nogil:
    if rank < ranks[at]:
        ranks[at] = rank
    if cost > bounds[at]:
        bounds[at] = cost
    if avail > bounds[stride + at]:
        bounds[stride + at] = avail
    if max_w > bounds[2 * stride + at]:
        bounds[2 * stride + at] = max_w
    if max_r > bounds[3 * stride + at]:
        bounds[3 * stride + at] = max_r


cdef void _tighten(const Reg* r, const Order* o) noexcept nogil:
    """Every bound recomputed from the live backends (the extremes exactly)."""
    cdef index_t w, j, i, nb = (o.nw + o.block_words - 1) // o.block_words
    cdef mask_t word
    cdef score_t* words = <score_t*>o.word_bounds
    cdef score_t* blocks = <score_t*>o.block_bounds
    cdef index_t* word_rank = <index_t*>o.word_rank
    cdef index_t* block_rank = <index_t*>o.block_rank
    for j in range(4):
        for w in range(o.nw):
            words[j * o.stride + w] = -INFINITY
        for w in range(nb):
            blocks[j * o.block_stride + w] = -INFINITY
    for w in range(o.nw):
        word_rank[w] = _NO_RANK
    for w in range(nb):
        block_rank[w] = _NO_RANK
    for w in range(o.nw):
        word = o.alive[w]
        while word:
            i = o.perm[(w << 6) + pm_ctz64(word)]
            word &= word - 1
            _raise(words, word_rank, o.stride, w, r.cost_score[i], r.avail_score[i], r.max_w[i], r.max_r[i],
                   r.id_rank[i])
        _raise(blocks, block_rank, o.block_stride, w // o.block_words, words[w], words[o.stride + w],
               words[2 * o.stride + w], words[3 * o.stride + w], word_rank[w])


cdef struct RankedPosition:
    index_t rank
    index_t position


cdef int _by_rank(const void* a, const void* b) noexcept nogil:
    cdef index_t x = (<const RankedPosition*>a).rank, y = (<const RankedPosition*>b).rank
    return (x > y) - (x < y)


@cython.final
cdef class ScanOrder:
    """The scan order of one registry (see the top of _order.pxi): numpy
    arrays in ``arrays`` (grown by doubling), the C view in ``o``, and
    ``slot_of`` (position -> scan slot). Built by CoreRegistry.order_by."""
    cdef Order o
    cdef readonly dict arrays
    cdef index_t* slot_of
    cdef score_t* skey              # [slots]: the key of the backend a slot was given to (descending, mostly)
    cdef mask_t* free_words         # [stride / 64 + 1]: bit w set when word w has a free slot (< n_slots)
    cdef readonly double w_cost, w_avail
    cdef readonly index_t n_slots
    cdef readonly index_t misplaced  # adds placed beside no run of their key since the order was built
    cdef readonly index_t compactions  # runs laid out again (``_compact_run``) since the order was built
    cdef readonly index_t built_slots  # slots when the order was built: later ones are its tail
    cdef readonly index_t extra_slots  # slots with no position (gaps left free when built): n_slots - positions
    cdef public index_t cascade_runs  # runs of keys a cascade may cross (_CASCADE; kept when the order is built again)
    cdef readonly index_t gap_every  # one slot in so many left free when built (GAP_EVERY; 0: none; kept likewise)
    cdef index_t n_features

    def __init__(self, double w_cost, double w_avail, Py_ssize_t block_words=BLOCK_WORDS):
        if block_words < 1:
            raise ValueError("block_words must be >= 1")
        self.w_cost = w_cost
        self.w_avail = w_avail
        self.o.block_words = block_words
        self.cascade_runs = _CASCADE
        self.gap_every = GAP_EVERY
        self.arrays = {}

    cdef void take(self):
        a = self.arrays
        self.o.stride = a["alive"].shape[0]
        self.o.nw = (self.n_slots + 63) >> 6
        self.o.block_stride = a["block_bounds"].shape[1]
        self.o.perm = <const index_t*>_ptr(a["perm"])
        self.o.srank = <const index_t*>_ptr(a["srank"])
        self.slot_of = <index_t*>_ptr(a["slot_of"])
        self.skey = <score_t*>_ptr(a["skey"])
        self.free_words = <mask_t*>_ptr(a["free_words"])
        self.o.alive = <const mask_t*>_ptr(a["alive"])
        self.o.features = <const mask_t*>_ptr(a["features"])
        self.o.btype = <const mask_t*>_ptr(a["btype"])
        self.o.health = <const mask_t*>_ptr(a["health"])
        self.o.cons_le = <const mask_t*>_ptr(a["cons_le"])
        self.o.ns_room = <const mask_t*>_ptr(a["ns_room"])
        self.o.n_features = self.n_features
        self.o.n_type = a["btype"].shape[0]
        self.o.n_health = a["health"].shape[0]
        self.o.n_cons = a["cons_le"].shape[0]
        if a["regions"] is None:
            self.o.regions = NULL
            self.o.n_regions = 0
        else:
            self.o.regions = <const mask_t*>_ptr(a["regions"])
            self.o.n_regions = a["regions"].shape[0]
        if a["compliance"] is None:
            self.o.compliance = NULL
            self.o.n_compliance = 0
        else:
            self.o.compliance = <const mask_t*>_ptr(a["compliance"])
            self.o.n_compliance = a["compliance"].shape[0]
        self.o.word_bounds = <const score_t*>_ptr(a["word_bounds"])
        self.o.block_bounds = <const score_t*>_ptr(a["block_bounds"])
        self.o.word_rank = <const index_t*>_ptr(a["word_rank"])
        self.o.block_rank = <const index_t*>_ptr(a["block_rank"])

    def room(self, Py_ssize_t positions, Py_ssize_t tokens, Py_ssize_t regions, Py_ssize_t compliance):
        """Make every array hold ``positions`` scan slots and the rows of
        every vocabulary (doubling); new rows and words start empty."""
        a = self.arrays
        # The old arrays stay alive until ``take`` points ``o`` at the new
        # ones: a match from another thread may run in the middle of this
        # (it holds Python calls) and read through ``o``.
        retired = dict(a)
        cdef Py_ssize_t stride = a["alive"].shape[0] if a else 0
        cdef Py_ssize_t need = max((positions + 63) >> 6, 1)
        cdef Py_ssize_t new_stride = stride if need <= stride else max(need, 2 * stride)
        cdef bint changed = new_stride != stride

        def grown(name, rows, fill=0):
            old = a.get(name)
            have = old.shape[0] if old is not None else 0
            want = have if rows <= have else max(rows, 2 * have)
            if old is not None and want == have and not changed:
                return old
            out = np.full((want, new_stride), fill, dtype=np.uint64 if fill == 0 else np.float64)
            if old is not None:
                out[:have, :old.shape[1]] = old
            return out

        if changed or not a:
            alive = np.zeros(new_stride, dtype=np.uint64)
            perm = np.full(new_stride * 64, -1, dtype=np.int64)
            srank = np.full(new_stride * 64, _NO_RANK, dtype=np.int64)
            slot_of = np.full(new_stride * 64, -1, dtype=np.int64)
            skey = np.full(new_stride * 64, -np.inf)
            free_words = np.zeros(new_stride // 64 + 1, dtype=np.uint64)
            if a:
                alive[:stride] = a["alive"]
                perm[:stride * 64] = a["perm"]
                srank[:stride * 64] = a["srank"]
                slot_of[:stride * 64] = a["slot_of"]
                skey[:stride * 64] = a["skey"]
                free_words[:a["free_words"].shape[0]] = a["free_words"]
            a["alive"], a["perm"], a["slot_of"], a["skey"], a["free_words"] = alive, perm, slot_of, skey, free_words
            a["srank"] = srank
            wb = np.full((4, new_stride), -np.inf)
            bb = np.full((4, new_stride // self.o.block_words + 1), -np.inf)
            wr = np.full(new_stride, _NO_RANK, dtype=np.int64)
            br = np.full(bb.shape[1], _NO_RANK, dtype=np.int64)
            if "word_bounds" in a:
                wb[:, :stride] = a["word_bounds"]
                bb[:, :a["block_bounds"].shape[1]] = a["block_bounds"]
                wr[:stride] = a["word_rank"]
                br[:a["block_rank"].shape[0]] = a["block_rank"]
            a["word_bounds"], a["block_bounds"], a["word_rank"], a["block_rank"] = wb, bb, wr, br
        a["features"] = grown("features", max(tokens, 1))
        self.n_features = tokens
        for name, count in (("btype", len(_SCAN_TYPE_CODE)), ("health", len(_SCAN_HEALTH_CODE)),
                            ("cons_le", _SCAN_UNKNOWN_CONSISTENCY + 1), ("ns_room", 1)):
            a[name] = grown(name, count)
        for name, count in (("regions", regions), ("compliance", compliance)):
            if name in a and a[name] is None:
                continue  # over the budget once: not kept from then on
            if max(count, 1) * new_stride * 8 > _ROW_BUDGET:
                a[name] = None
            else:
                a[name] = grown(name, max(count, 1))
        self.take()
        del retired

    cdef void write(self, const Reg* r, index_t i) noexcept nogil:
        """Scan slot of position ``i`` := the backend's rows and bounds (its
        slot's bits cleared first), live."""
        cdef index_t j = self.slot_of[i]
        _write_bits(r, &self.o, i, j)
        (<index_t*>self.o.srank)[j] = r.id_rank[i]
        (<mask_t*>self.o.alive)[j >> 6] |= (<mask_t>1) << (j & 63)
        self.note_free(j >> 6)
        self.raise_bounds(r, i)

    cdef inline void set_slots(self, index_t n) noexcept nogil:
        # ``n_slots`` := n, and the words the scan covers with it.
        self.n_slots = n
        self.o.nw = (n + 63) >> 6

    cdef void put(self, const Reg* r, index_t i) noexcept nogil:
        """Position ``i`` became live: it takes a free scan slot where its
        key ranks (``_place``), swapping slots with that slot's dead
        position (or none: a gap); else it keeps the slot it had (a hole
        filled) or takes the next one."""
        cdef index_t j, f, q, misplaced
        cdef index_t* perm = <index_t*>self.o.perm
        cdef score_t key = self.w_cost * r.cost_score[i] + self.w_avail * r.avail_score[i]
        if self.slot_of[i] < 0:
            self.slot_of[i] = self.n_slots
            perm[self.n_slots] = i
            self.skey[self.n_slots] = -INFINITY  # a free slot past every key: the keys stay sorted
            self.set_slots(self.n_slots + 1)
        misplaced = self.misplaced
        f = self._place(r, i, key, r.id_rank[i], self.slot_of[i])
        j = self.slot_of[i]  # (a cascade may have moved it)
        if f != j:
            q = perm[f]
            perm[f] = i
            perm[j] = q
            self.slot_of[i] = f
            if q >= 0:
                self.slot_of[q] = j
            elif j == self.n_slots - 1 and j >= self.built_slots:
                # It took a gap (a slot with no position) and left the last
                # slot, made for it, with none: that slot goes again. A
                # growing registry fills the gaps in its runs first and
                # leaves no free tail behind, which later adds would
                # cascade towards from every run, moving each run's
                # earliest id to its end (ties then prune by rank no more).
                self.skey[j] = -INFINITY
                self.set_slots(self.n_slots - 1)
                self.extra_slots -= 1
            self.note_free(j >> 6)
        j = self.slot_of[i]
        if self.misplaced == misplaced or j >= self.built_slots:
            self.skey[j] = key
        # else placed beside no run of its key (step 3) inside the order as
        # built: its slot keeps the key of the run it sits in, so ``skey``
        # stays sorted there and the binary searches of the next adds find
        # their runs (one slot out of order sends a search thousands of
        # slots astray). The tail of slots added since the order was built
        # (a registry growing with no hole) keeps its backends' keys: adds
        # that find their key there are grouped beside it until the order
        # is built again.
        self.write(r, i)

    cdef index_t _place(self, const Reg* r, index_t i, score_t key, index_t rank, index_t j) noexcept nogil:
        # The free slot an added backend (static ``key``, id ``rank``) takes,
        # ``j`` being the slot its position holds (free):
        # 1. in the run of slots whose key equals its own (or right beside
        #    it), the free slot nearest to the word where its rank falls, as
        #    a fresh order lays ties out by id;
        # 2. the run full: the slot right beside it, freed by a cascade that
        #    moves one backend per run of keys between it and the nearest
        #    free slot (each to the other end of its run, so keys stay
        #    sorted), when at most ``cascade_runs`` runs lie between;
        # 3. else a free slot before the run (among higher keys): in the
        #    nearest of _COVER_TRIES words with one whose bounds already
        #    cover the backend's values, else the nearest; after the run
        #    only when none is free before.
        cdef index_t lo = 0, hi = self.n_slots, mid, first, past, wa, wb, target, ahead, back, n_after, n_before, holes, f
        while lo < hi:  # the first slot whose key is not above ``key``
            mid = (lo + hi) >> 1
            if self.skey[mid] > key:
                lo = mid + 1
            else:
                hi = mid
        first = lo
        hi = self.n_slots
        while lo < hi:  # the first slot whose key is below it
            mid = (lo + hi) >> 1
            if self.skey[mid] >= key:
                lo = mid + 1
            else:
                hi = mid
        past = lo
        wa = min(first, self.n_slots - 1) >> 6
        wb = max(wa, (past - 1) >> 6)
        lo, hi = wa + 1, wb + 1
        while lo < hi:  # the first word of the run whose least rank is after ``rank``
            mid = (lo + hi) >> 1
            if self.o.word_rank[mid] <= rank:
                lo = mid + 1
            else:
                hi = mid
        target = lo - 1
        # 1. Within [first - 1, past]: beside the run keeps the keys sorted too.
        lo = first - 1 if first > 0 else 0
        hi = past if past < self.n_slots else self.n_slots - 1
        ahead = self._free_at_or_after(max(target << 6, lo))
        if ahead > hi:
            ahead = -1
        back = self._free_before(min((target + 1) << 6, hi + 1))
        if back < lo:
            back = -1
        if ahead >= 0 and (back < 0 or (ahead >> 6) - target <= target - (back >> 6)):
            return ahead
        if back >= 0:
            if target == wb and (back >> 6) != target:
                # Its rank falls in the run's last word, which has no free
                # slot: the run's first free slot rather than the nearest,
                # so that ids arriving in increasing order (names numbered
                # on) lie in increasing order. A tie met before the winners
                # then costs an evaluation only while the heap fills (the
                # later ones are after its worst); nearest-first lays them
                # out decreasing, and each is evaluated. (A cascade to the
                # run's end instead moves the next runs' earliest ids out
                # of place, which costs more: 4x at 1M backends.)
                # With a sixteenth of the run free (and the run four words
                # or more), the run is laid out again first
                # (``_compact_run``): its ids sorted, its free slots at its
                # end, where this id and the next ones go in order, after
                # the winners of a tie.
                holes = self._free_count(first, past) if past - first >= _COMPACT_MIN else 0
                if holes > 0 and holes * _COMPACT_FREE >= past - first:
                    f = self._compact_run(r, key, first, past)
                    if f >= 0:
                        return f
                return self._free_at_or_after(lo)
            return back
        # 2. The run is full: a cascade from the nearest free slot on either side.
        ahead = self._free_at_or_after(past)
        back = self._free_before(first)
        n_after = self._runs(past, ahead) if ahead >= 0 else self.cascade_runs + 1
        n_before = self._runs(back + 1, first) if back >= 0 else self.cascade_runs + 1
        # From before first: each run then gives up its last backend (its
        # latest id) to its front, so no word's least id rank drops and ties
        # still prune by rank; from after, each gives up its first (earliest).
        if n_before <= self.cascade_runs:
            return self._cascade_ahead(r, back, first)
        if n_after <= self.cascade_runs:
            return self._cascade_back(r, past, ahead)
        # 3. Beside no run of its key: a free slot before the run, among
        # higher keys; after the run only when none is free before. Counted:
        # past a sixteenth of the positions, the order is built again
        # (LayoutCore.add).
        self.misplaced += 1
        if back >= 0:
            # A lower key can still have a higher value in one of the four
            # bounds (availability, capacity): among the nearest words with
            # a free slot before the run, one whose bounds already cover the
            # backend's, when there is one (it then raises no block's bound,
            # which would make every match visit the block); else the
            # nearest.
            f = self._free_covering(r, i, first, _COVER_TRIES)
            if f >= 0:
                return f
        if back < 0:
            back = ahead
        if back < 0 or (j < first and first - j <= first - back) or (back >= past and j >= past and j <= back):
            return j
        return back

    cdef index_t _free_covering(self, const Reg* r, index_t i, index_t before, index_t tries) noexcept nogil:
        # The last free slot before ``before`` in a word whose bounds cover
        # position i's values, looking at ``tries`` words with a free slot
        # at most (-1: none). A word's bounds are under its block's, so the
        # block's cover them too.
        cdef index_t s, w
        cdef const score_t* b = self.o.word_bounds
        cdef index_t st = self.o.stride
        while tries > 0:
            s = self._free_before(before)
            if s < 0:
                return -1
            w = s >> 6
            if (b[w] >= r.cost_score[i] and b[st + w] >= r.avail_score[i] and b[2 * st + w] >= r.max_w[i]
                    and b[3 * st + w] >= r.max_r[i]):
                return s
            before = w << 6
            tries -= 1
        return -1

    cdef index_t _free_count(self, index_t a, index_t b) noexcept nogil:
        # The number of free slots in [a, b): only the words ``free_words``
        # marks are read (a run's few, not its every word: this runs on
        # most adds whose id falls in its run's last word).
        cdef index_t w, s, wa = a >> 6, last = (b - 1) >> 6, count = 0
        cdef mask_t free, marked
        if a >= b:
            return 0
        for s in range(wa >> 6, (last >> 6) + 1):
            marked = self.free_words[s]
            if s == wa >> 6:
                marked &= ~(((<mask_t>1) << (wa & 63)) - 1)
            if s == last >> 6 and (last & 63) != 63:
                marked &= ((<mask_t>1) << ((last & 63) + 1)) - 1
            while marked:
                w = (s << 6) + pm_ctz64(marked)
                marked &= marked - 1
                free = self._free_mask(w)
                if w == wa:
                    free &= ~(((<mask_t>1) << (a & 63)) - 1)
                if w == last and (b & 63):
                    free &= ((<mask_t>1) << (b & 63)) - 1
                count += pm_popcount64(free)
        return count

    def free_count(self, Py_ssize_t a, Py_ssize_t b):
        """The number of free scan slots in [a, b) (``_free_count``, for the
        tests: slots past ``n_slots`` are not counted)."""
        if not 0 <= a <= b <= self.n_slots:
            raise IndexError(f"[{a}, {b}) is not within the {self.n_slots} scan slots")
        return self._free_count(a, b)

    cdef index_t _compact_run(self, const Reg* r, score_t key, index_t first, index_t past) noexcept nogil:
        # The run of ``key`` in slots [first, past) laid out as a fresh
        # order lays it: its live backends sorted by id rank from ``first``,
        # its free slots after them. Returns the first free slot (-1: no
        # memory for the sort). A backend of another key put among them by
        # step 3 of ``_place`` (its slot keeps the run's key) is sorted with
        # them: it stays in the stretch of slots it sat in. Work in
        # proportion to the run, not to the registry; called once a
        # sixteenth of the run is free, so it is amortized over as many adds
        # that then go in order to its end.
        cdef index_t n = past - first, live = 0, dead = past - first, s, p, w
        cdef index_t* perm = <index_t*>self.o.perm
        cdef index_t* srank = <index_t*>self.o.srank
        cdef mask_t* alive = <mask_t*>self.o.alive
        cdef mask_t bit
        cdef RankedPosition* sorted_ = <RankedPosition*>malloc(n * sizeof(RankedPosition))
        if sorted_ == NULL:
            return -1
        for s in range(first, past):
            p = perm[s]
            if (alive[s >> 6] >> (s & 63)) & 1:
                sorted_[live].rank = r.id_rank[p]
                sorted_[live].position = p
                live += 1
            else:
                dead -= 1
                sorted_[dead].position = p  # a dead position (or none) keeps riding with a free slot
        qsort(sorted_, live, sizeof(RankedPosition), _by_rank)
        self.compactions += 1
        for s in range(first, past):
            p = sorted_[s - first].position
            self.skey[s] = key  # (a free slot may have kept another key's)
            if perm[s] == p and (s - first < live) == ((alive[s >> 6] >> (s & 63)) & 1):
                continue  # already in its place
            perm[s] = p
            if p >= 0:
                self.slot_of[p] = s
            bit = (<mask_t>1) << (s & 63)
            if s - first < live:
                srank[s] = r.id_rank[p]
                _write_bits(r, &self.o, p, s)
                alive[s >> 6] |= bit
                self.raise_bounds(r, p)
            else:
                alive[s >> 6] &= ~bit
        free(sorted_)
        for w in range(first >> 6, ((past - 1) >> 6) + 1):
            self.note_free(w)
            self.retake_rank(r, w)
        return first + live

    cdef index_t _runs(self, index_t a, index_t b) noexcept nogil:
        # The number of runs of equal keys in the live slots [a, b), counted
        # up to ``cascade_runs`` + 1.
        cdef index_t count = 0
        while a < b and count <= self.cascade_runs:
            a = self._run_end(a, b)
            count += 1
        return count

    cdef inline index_t _run_end(self, index_t a, index_t b) noexcept nogil:
        # The first slot in (a, b) whose key is below slot a's (b: none).
        cdef index_t lo = a + 1, hi = b, mid
        cdef score_t key = self.skey[a]
        while lo < hi:
            mid = (lo + hi) >> 1
            if self.skey[mid] >= key:
                lo = mid + 1
            else:
                hi = mid
        return lo

    cdef inline index_t _run_start(self, index_t a, index_t b) noexcept nogil:
        # The first slot in [a, b - 1] whose key equals slot b - 1's.
        cdef index_t lo = a, hi = b - 1, mid
        cdef score_t key = self.skey[b - 1]
        while lo < hi:
            mid = (lo + hi) >> 1
            if self.skey[mid] > key:
                lo = mid + 1
            else:
                hi = mid
        return lo

    cdef index_t _cascade_back(self, const Reg* r, index_t past, index_t free) noexcept nogil:
        # Free slot ``past`` from the free slot ``free`` after it: the live
        # slots between are runs of keys; the first backend of each run,
        # last run first, moves to the free slot just after its run.
        cdef index_t start
        while free > past:
            start = self._run_start(past, free)
            self._move(r, start, free)
            free = start
        return past

    cdef index_t _cascade_ahead(self, const Reg* r, index_t free, index_t first) noexcept nogil:
        # Free slot ``first - 1`` from the free slot ``free`` before it: the
        # last backend of each run between, first run first, moves to the
        # free slot just before its run.
        cdef index_t end
        while free < first - 1:
            end = self._run_end(free + 1, first)
            self._move(r, end - 1, free)
            free = end - 1
        return first - 1

    cdef void _move(self, const Reg* r, index_t a, index_t b) noexcept nogil:
        # The live backend in slot ``a`` moves to the free slot ``b`` with
        # its key; ``a`` takes b's position (dead, or the one being added).
        cdef index_t* perm = <index_t*>self.o.perm
        cdef index_t p = perm[a], q = perm[b]
        perm[b] = p
        self.slot_of[p] = b
        perm[a] = q
        if q >= 0:
            self.slot_of[q] = a
        self.skey[b] = self.skey[a]
        (<index_t*>self.o.srank)[b] = r.id_rank[p]
        _write_bits(r, &self.o, p, b)
        (<mask_t*>self.o.alive)[b >> 6] |= (<mask_t>1) << (b & 63)
        (<mask_t*>self.o.alive)[a >> 6] &= ~((<mask_t>1) << (a & 63))
        self.note_free(a >> 6)
        self.note_free(b >> 6)
        self.raise_bounds(r, p)
        if (a >> 6) != (b >> 6):
            self._rank_left(r, a >> 6, r.id_rank[p])

    cdef index_t _free_at_or_after(self, index_t s) noexcept nogil:
        # The first free slot at or after ``s`` (-1: none).
        cdef index_t w = s >> 6, last = (self.n_slots - 1) >> 6
        cdef mask_t free
        if s < 0 or w > last:
            return -1
        free = self._free_mask(w) & ~(((<mask_t>1) << (s & 63)) - 1)
        if free:
            return (w << 6) + pm_ctz64(free)
        w = self._free_word(w + 1, last) if w < last else -1
        return self._free_in(w) if w >= 0 else -1

    cdef index_t _free_before(self, index_t s) noexcept nogil:
        # The last free slot before ``s`` (-1: none).
        cdef index_t w
        cdef mask_t free
        if s <= 0:
            return -1
        s = min(s, self.n_slots)
        w = (s - 1) >> 6
        free = self._free_mask(w)
        if ((s - 1) & 63) != 63:
            free &= ((<mask_t>1) << (((s - 1) & 63) + 1)) - 1
        if not free:
            w = self._free_word_before(w)
            if w < 0:
                return -1
            free = self._free_mask(w)
        return (w << 6) + 63 - pm_clz64(free)

    cdef inline mask_t _free_mask(self, index_t w) noexcept nogil:
        # Word w's free slots (below n_slots).
        cdef mask_t free = ~self.o.alive[w]
        if w == (self.n_slots - 1) >> 6 and (self.n_slots & 63):
            free &= ((<mask_t>1) << (self.n_slots & 63)) - 1
        return free

    cdef index_t _free_word(self, index_t wa, index_t wb) noexcept nogil:
        # The first word in [wa, wb] with a free slot (-1: none), 64 words
        # at a time through ``free_words``.
        cdef index_t s = wa >> 6, stop = wb >> 6
        cdef mask_t bits
        while s <= stop:
            bits = self.free_words[s]
            if s == wa >> 6:
                bits &= ~(((<mask_t>1) << (wa & 63)) - 1)
            if s == stop and (wb & 63) != 63:
                bits &= ((<mask_t>1) << ((wb & 63) + 1)) - 1
            if bits:
                return (s << 6) + pm_ctz64(bits)
            s += 1
        return -1

    cdef index_t _free_word_before(self, index_t wa) noexcept nogil:
        # The last word before ``wa`` with a free slot (-1: none).
        cdef index_t s = (wa - 1) >> 6
        cdef mask_t bits
        if wa <= 0:
            return -1
        while s >= 0:
            bits = self.free_words[s]
            if s == (wa - 1) >> 6 and ((wa - 1) & 63) != 63:
                bits &= ((<mask_t>1) << (((wa - 1) & 63) + 1)) - 1
            if bits:
                return (s << 6) + 63 - pm_clz64(bits)
            s -= 1
        return -1

    cdef inline void note_free(self, index_t w) noexcept nogil:
        # Word w's bit in ``free_words`` := whether it has a free slot.
        if self._free_in(w) >= 0:
            self.free_words[w >> 6] |= (<mask_t>1) << (w & 63)
        else:
            self.free_words[w >> 6] &= ~((<mask_t>1) << (w & 63))

    cdef inline index_t _free_in(self, index_t w) noexcept nogil:
        # The first free scan slot of word ``w`` (-1: none, or w out of range).
        # A slot at or past n_slots has no position and is never taken.
        cdef mask_t free
        if w < 0 or w > (self.n_slots - 1) >> 6:
            return -1
        free = self._free_mask(w)
        return (w << 6) + pm_ctz64(free) if free else -1

    cdef void drop(self, const Reg* r, index_t i) noexcept nogil:
        cdef index_t j = self.slot_of[i]
        if j >= 0:
            (<mask_t*>self.o.alive)[j >> 6] &= ~((<mask_t>1) << (j & 63))
            self.note_free(j >> 6)
            self._rank_left(r, j >> 6, r.id_rank[i])

    cdef inline void _rank_left(self, const Reg* r, index_t w, index_t rank) noexcept nogil:
        # A backend of id ``rank`` left word ``w``: when it held the word's
        # least rank, the word's (and its block's) least rank is taken again
        # from the live slots, so ties keep pruning by rank after removes
        # and moves (a stale, lower rank would make every tie at the top
        # visit the word).
        if rank == self.o.word_rank[w]:
            self.retake_rank(r, w)

    cdef void relabel(self, const Reg* r, index_t i) noexcept nogil:
        # Position ``i``'s id rank changed (ids spread out around an added
        # one): its slot's rank, and its word's and block's least ranks. A
        # rank that drops lowers them in place; only one that rises from the
        # word's least makes the word's be taken again from its live slots.
        cdef index_t j = self.slot_of[i], w, b, old, new
        if j < 0:
            return
        w = j >> 6
        old = self.o.srank[j]
        new = r.id_rank[i]
        (<index_t*>self.o.srank)[j] = new
        if not (self.o.alive[w] >> (j & 63)) & 1:
            return  # a dead slot's rank counts in no bound
        if new <= self.o.word_rank[w]:
            (<index_t*>self.o.word_rank)[w] = new
            b = w // self.o.block_words
            if new < self.o.block_rank[b]:
                (<index_t*>self.o.block_rank)[b] = new
        elif old == self.o.word_rank[w]:
            self.retake_rank(r, w)

    cdef void retake_rank(self, const Reg* r, index_t w) noexcept nogil:
        # Word ``w``'s least id rank from its live slots, and its block's
        # when that changes what the block holds.
        cdef index_t* word_rank = <index_t*>self.o.word_rank
        cdef index_t* block_rank = <index_t*>self.o.block_rank
        cdef index_t least = _NO_RANK, old = word_rank[w], b = w // self.o.block_words, v, stop
        cdef mask_t word = self.o.alive[w]
        while word:
            v = r.id_rank[self.o.perm[(w << 6) + pm_ctz64(word)]]
            word &= word - 1
            if v < least:
                least = v
        word_rank[w] = least
        if least <= block_rank[b]:
            block_rank[b] = least
        elif old == block_rank[b]:
            stop = min((b + 1) * self.o.block_words, self.o.stride)
            for v in range(b * self.o.block_words, stop):
                if word_rank[v] < least:
                    least = word_rank[v]
            block_rank[b] = least

    cdef inline void set_ns_room(self, const Reg* r, index_t i) noexcept nogil:
        # Position i's namespace room bit from its columns (its usage changed).
        cdef index_t j = self.slot_of[i]
        if j >= 0:
            _write_ns_room(r, &self.o, i, j)

    cdef void set_health(self, index_t i, code_t old, code_t new) noexcept nogil:
        cdef index_t j = self.slot_of[i]
        cdef mask_t bit = (<mask_t>1) << (j & 63)
        cdef mask_t* rows = <mask_t*>self.o.health
        if j < 0 or old == new:
            return
        rows[old * self.o.stride + (j >> 6)] &= ~bit
        rows[new * self.o.stride + (j >> 6)] |= bit

    cdef void raise_bounds(self, const Reg* r, index_t i) noexcept nogil:
        """Position ``i``'s values into its word's and block's bounds (a
        bound only ever loosens here; it is tightened by ``_tighten``)."""
        cdef index_t j = self.slot_of[i]
        if j < 0:
            return
        _raise(<score_t*>self.o.word_bounds, <index_t*>self.o.word_rank, self.o.stride, j >> 6, r.cost_score[i],
               r.avail_score[i], r.max_w[i], r.max_r[i], r.id_rank[i])
        _raise(<score_t*>self.o.block_bounds, <index_t*>self.o.block_rank, self.o.block_stride,
               (j >> 6) // self.o.block_words, r.cost_score[i], r.avail_score[i], r.max_w[i], r.max_r[i], r.id_rank[i])

    cdef ScanOrder snapshot(self, const Reg* r):
        """A copy for a batch: its own alive and health rows (a concurrent
        remove or status change cannot tear them) and exact bounds for the
        snapshot's values; the other rows shared."""
        cdef ScanOrder out = ScanOrder.__new__(ScanOrder)
        out.w_cost = self.w_cost
        out.w_avail = self.w_avail
        out.o.block_words = self.o.block_words
        out.n_slots = self.n_slots
        out.built_slots = self.built_slots
        out.extra_slots = self.extra_slots
        out.gap_every = self.gap_every
        out.arrays = dict(self.arrays)
        out.n_features = self.n_features
        for name in ("alive", "health", "ns_room", "srank", "word_bounds", "block_bounds", "word_rank", "block_rank"):
            out.arrays[name] = self.arrays[name].copy()
        out.take()
        _tighten(r, &out.o)
        return out

    @property
    def block_words(self):
        return self.o.block_words

    @property
    def perm(self):
        """int64[n]: scan slot -> position (-1: none)."""
        return self.arrays["perm"][:self.n_slots].copy()


cdef void _write_bits(const Reg* r, Order* o, index_t i, index_t j) noexcept nogil:
    # Every row's bit j := position i's (the feature rows of the columns, its
    # codes, its region and compliance words).
    cdef index_t w = j >> 6, t, b, st = o.stride, c
    cdef mask_t bit = (<mask_t>1) << (j & 63)
    cdef mask_t word
    cdef mask_t* rows
    cdef index_t n_tokens = o.n_features
    rows = <mask_t*>o.features
    for t in range(n_tokens):
        if _bit(r.feature_bits + t * r.stride, i):
            rows[t * st + w] |= bit
        else:
            rows[t * st + w] &= ~bit
    _write_coded(r, o, i, j, True)


cdef inline void _write_ns_room(const Reg* r, Order* o, index_t i, index_t j) noexcept nogil:
    # Slot j's namespace room bit from position i's columns: a backend with
    # no room for one more namespace fails the namespace rule whatever a
    # batch has placed (a NaN limit is no limit).
    cdef mask_t bit = (<mask_t>1) << (j & 63)
    if r.max_ns[i] - r.ns_count[i] < 1:
        (<mask_t*>o.ns_room)[j >> 6] &= ~bit
    else:
        (<mask_t*>o.ns_room)[j >> 6] |= bit


cdef inline index_t _word_distance(index_t a, index_t b) noexcept nogil:
    return a - b if a >= b else b - a


cdef void _build_rows(const Reg* r, Order* o, const index_t* slot_of, index_t n_tokens) noexcept nogil:
    """Every row and bound from scratch (the arrays start empty): sparse in
    the feature rows (their set bits), one pass over the backends for the rest."""
    cdef index_t t, w, i, j, b, c, st = o.stride
    cdef mask_t word
    cdef mask_t* rows
    rows = <mask_t*>o.features
    for t in range(n_tokens):
        for w in range(r.nw):
            word = r.feature_bits[t * r.stride + w] & r.alive[w]
            while word:
                j = slot_of[(w << 6) + pm_ctz64(word)]
                word &= word - 1
                rows[t * st + (j >> 6)] |= (<mask_t>1) << (j & 63)
    for w in range(r.nw):
        word = r.alive[w]
        while word:
            i = (w << 6) + pm_ctz64(word)
            word &= word - 1
            j = slot_of[i]
            (<mask_t*>o.alive)[j >> 6] |= (<mask_t>1) << (j & 63)
            (<index_t*>o.srank)[j] = r.id_rank[i]
            _write_coded(r, o, i, j, False)
    _tighten(r, o)


cdef inline void _write_coded(const Reg* r, Order* o, index_t i, index_t j, bint clear) noexcept nogil:
    # Slot j's bits in the rows of codes, regions and compliance tags (all
    # but the features), from position i. ``clear``: the slot held a
    # backend, whose bits go first (an add, an update); a build passes
    # False, its rows start empty (clears were a third of a build's writes
    # at 100,000 backends). Inlined, each caller's constant drops the
    # other's branches.
    cdef index_t w = j >> 6, t, b, st = o.stride, c
    cdef mask_t bit = (<mask_t>1) << (j & 63)
    cdef mask_t word
    cdef mask_t* rows
    rows = <mask_t*>o.btype
    if clear:
        for c in range(o.n_type):
            rows[c * st + w] &= ~bit
    rows[r.btype[i] * st + w] |= bit
    rows = <mask_t*>o.health
    if clear:
        for c in range(o.n_health):
            rows[c * st + w] &= ~bit
    rows[r.health[i] * st + w] |= bit
    rows = <mask_t*>o.cons_le
    for c in range(o.n_cons):
        if r.consistency[i] <= c:
            rows[c * st + w] |= bit
        elif clear:
            rows[c * st + w] &= ~bit
    _write_ns_room(r, o, i, j)
    if o.regions != NULL:
        rows = <mask_t*>o.regions
        if clear:
            for c in range(o.n_regions):
                rows[c * st + w] &= ~bit
        for t in range(r.wr):
            word = r.region_rows[i * r.wr + t]
            while word:
                b = (t << 6) + pm_ctz64(word)
                word &= word - 1
                if b < o.n_regions:
                    rows[b * st + w] |= bit
    if o.compliance != NULL:
        rows = <mask_t*>o.compliance
        if clear:
            for c in range(o.n_compliance):
                rows[c * st + w] &= ~bit
        for t in range(r.wk):
            word = r.compliance_rows[i * r.wk + t]
            while word:
                b = (t << 6) + pm_ctz64(word)
                word &= word - 1
                if b < o.n_compliance:
                    rows[b * st + w] |= bit
