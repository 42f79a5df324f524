# The C types every kernel shares; numpy twins in _types.py.
from libc.stdint cimport uint64_t, int64_t, uint8_t, int32_t, uint32_t

ctypedef uint64_t mask_t     # one word of a bitmask
ctypedef int64_t index_t     # a backend's position / a rank
ctypedef double score_t      # scores and numeric columns (float64)
ctypedef uint8_t code_t      # small enumerations
ctypedef uint32_t rules_t    # a set of failed rules (bits of rules.RULES)
