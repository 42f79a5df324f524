"""prism_match: bind Prism pattern slots to the best backend of a registry.

The package root only re-exports: ``__all__`` is the public surface (and
what ``dir(prism_match)`` shows); see README.md for the tour and the layout.
The library logs under the ``prism_match`` logger and is silent until an
application configures logging.
"""

import logging as _logging

from . import _env  # noqa: F401  (before the compiled core loads: OpenMP reads it once)
from .errors import RegistryError
from .health import HealthTracker
from .patterns import BindingProblem, PatternBinding
from .optimal import OptimalAssignment, SolverReport
from .placement import Assignment, Binding, PlacementError, Unplaced
from .policy import MatchPolicy
from ._core import PreparedRegistration
from .registry import Change, Registry, Reservation, load_registry, load_snapshot
from .results import Diagnosis, Match, QueryResult, Reason
from .schema import SlotRequirement
from .slot_details import PreparedSlot
from .slot_files import load_slots

__all__ = ["load_registry", "load_snapshot", "load_slots", "Registry", "RegistryError", "MatchPolicy",
           "PreparedSlot", "PreparedRegistration", "Match", "Reason", "Diagnosis", "QueryResult", "Assignment", "Binding", "Unplaced",
           "OptimalAssignment", "SolverReport",
           "PlacementError", "PatternBinding", "BindingProblem", "Reservation", "Change", "HealthTracker",
           "HealthChecker", "SlotRequirement", "__version__"]
__version__ = "0.1.0"

_logging.getLogger(__name__).addHandler(_logging.NullHandler())


def __getattr__(name: str):
    # HealthChecker brings asyncio and ssl (about 50 ms of import): loaded on first use.
    if name == "HealthChecker":
        from .probes import HealthChecker

        return HealthChecker
    raise AttributeError(f"module 'prism_match' has no attribute {name!r}")


def __dir__() -> list[str]:
    # Submodules become attributes of the package as they are imported; the
    # public surface is what __all__ names.
    return sorted(__all__)
