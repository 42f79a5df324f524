"""prism_match: bind Prism pattern slots to the best backend of a registry.

The package root only re-exports; see README.md for the tour and the layout.
"""

from . import _env  # noqa: F401  (before the compiled core loads: OpenMP reads it once)
from .batch import load_slots
from .errors import RegistryError
from .health import HealthTracker
from .patterns import BindingProblem, PatternBinding
from .policy import MatchPolicy
from .slot_details import PreparedSlot
from .placement import Assignment, Binding, PlacementError, Unplaced
from .registry import Change, Registry, Reservation, load_registry, load_snapshot
from .results import Diagnosis, Match, QueryResult, Reason

__all__ = ["load_registry", "load_snapshot", "load_slots", "Registry", "RegistryError", "MatchPolicy",
           "PreparedSlot", "Match", "Reason", "Diagnosis", "QueryResult", "Assignment", "Binding", "Unplaced",
           "PlacementError", "PatternBinding", "BindingProblem", "Reservation", "Change", "HealthTracker",
           "HealthChecker"]
__version__ = "0.1.0"


def __getattr__(name: str):
    # HealthChecker brings asyncio and ssl (about 50 ms of import): loaded on first use.
    if name == "HealthChecker":
        from .probes import HealthChecker

        return HealthChecker
    raise AttributeError(f"module 'prism_match' has no attribute {name!r}")
