"""numpy dtypes matching the C types of ``_typedefs.pxd`` (keep them in step)."""

import numpy as np

MASK_DTYPE = np.uint64     # mask_t: one word of a capability/region/compliance mask
INDEX_DTYPE = np.int64     # index_t: a backend's position
SCORE_DTYPE = np.float64   # score_t: scores and every numeric column
CODE_DTYPE = np.uint8      # code_t: backend type, health status, consistency level
RANK_DTYPE = np.int64      # rank of a backend_id in byte order (the tie-breaker)
RULES_DTYPE = np.uint32    # rules_t: a set of failed rules (bits of rules.RULES)
