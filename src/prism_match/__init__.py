"""prism_match: bind Prism pattern slots to the best backend of a registry.

The package root only re-exports: ``__all__`` is the public surface (and
what ``dir(prism_match)`` shows); see README.md for the tour and the layout.
The library logs under the ``prism_match`` logger and is silent until an
application configures logging.
"""

import logging as _logging

from . import _env  # noqa: F401  (before the compiled core loads: OpenMP reads it once)
from .batch import Assignment, Binding, PlacementError, Unplaced
from .errors import RegistryError
from .health import HealthTracker
from .patterns import BindingProblem, PatternBinding
from .policy import MatchPolicy
from .prepare import PreparedSlot
from .registry import Registry, load_registry
from .results import Diagnosis, Match, QueryResult, Reason
from .schema import SlotRequirement
from .slot_files import load_slots
from .snapshot import load_snapshot

__all__ = ["load_registry", "load_snapshot", "load_slots", "Registry", "RegistryError", "MatchPolicy",
           "PreparedSlot", "Match", "Reason", "Diagnosis", "QueryResult", "Assignment", "Binding", "Unplaced",
           "PlacementError", "PatternBinding", "BindingProblem", "HealthTracker", "SlotRequirement", "__version__"]
__version__ = "0.1.0"

_logging.getLogger(__name__).addHandler(_logging.NullHandler())


def __dir__() -> list[str]:
    # Submodules become attributes of the package as they are imported; the
    # public surface is what __all__ names.
    return sorted(__all__)
