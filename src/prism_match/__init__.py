"""prism_match: bind Prism pattern slots to the best backend of a registry.

The package root only re-exports; see README.md for the tour and the layout.
"""

from . import _env  # noqa: F401  (before the compiled core loads: OpenMP reads it once)
from .batch import Assignment, Binding, PlacementError, Unplaced
from .slot_files import load_slots
from .errors import RegistryError
from .patterns import BindingProblem, PatternBinding
from .policy import MatchPolicy
from .prepare import PreparedSlot
from .registry import Registry, load_registry
from .snapshot import load_snapshot
from .results import Diagnosis, Match, QueryResult, Reason

__all__ = ["load_registry", "load_snapshot", "load_slots", "Registry", "RegistryError", "MatchPolicy",
           "PreparedSlot", "Match", "Reason", "Diagnosis", "QueryResult", "Assignment", "Binding", "Unplaced",
           "PlacementError", "PatternBinding", "BindingProblem"]
__version__ = "0.1.0"
