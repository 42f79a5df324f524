"""Process settings that must be in place before the compiled core loads.

OpenMP's default wait policy spins idle threads at every barrier; on a busy
2-core machine the spinning thread steals the core the other one needs, and a
two-thread batch ran 3x slower than one thread. Passive waiting costs a
microsecond per parallel region. A value the user set is kept.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
