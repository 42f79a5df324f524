"""Backend health: check results in, status, uptime and incidents out.

Rounds of `CheckResult` values (from `probes.HealthChecker`, which runs the
registrations' ``health_check`` probes, or from the caller's own checks)
feed a `HealthTracker`. The tracker derives every backend's status from its
`HealthCheckConfig` thresholds (the registration's block, or one config for
all), keeps a rolling 24 h uptime and an incident log, and writes through
the registry: each status change goes to ``registry.update(backend_id,
status=..., uptime=...)`` (the next match sees it) and every round to
``registry.record_health(...)`` (``registry[id].health`` shows the live
``last_check_at`` and incidents). It runs no checks itself and never reads
the wall clock: every time comes from the caller, or from a clock the caller
hands in.
"""

from __future__ import annotations

import bisect
import enum
import logging
import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import msgspec

from .errors import RegistryError
from .loading import validate_documents
from .redact import printable
from .schema import HEALTH_STATUSES, CheckSpec, HealthCheckConfig, HealthStatus, Incident, Severity

_log = logging.getLogger("prism_match")

__all__ = [
    "DEFAULT_CONCURRENCY",
    "HEALTH_STATUSES",
    "PASSING_WEIGHT_SHARE",
    "UPTIME_WINDOW",
    "CheckResult",
    "CheckSpec",
    "HealthCheckConfig",
    "HealthStatus",
    "HealthTracker",
    "Incident",
    "Severity",
    "StatusSink",
    "read_health_check",
]

# Where a tracker's own errors say they come from (the error grammar's location).
_WHERE = "HealthTracker"


def _error(message: str) -> RegistryError:
    return RegistryError(message, _WHERE)

# The registry's statuses and severities (schema.py). `unknown` is not in the
# seed's table; it is what a backend is before enough rounds have been seen,
# as the contract's `health_statuses` default implies.

UPTIME_WINDOW = timedelta(hours=24)

# Probes in flight at once in a HealthChecker (probes.py), over every backend.
# A hung probe holds its slot until its timeout, so the bound must leave room
# for many: a round of 1,000 probes of which 100 hang then still ends in
# about one timeout.
DEFAULT_CONCURRENCY = 512

# A round fails when the checks that passed carry less than this share of the
# configured weight: one weak check alone cannot keep a backend up.
PASSING_WEIGHT_SHARE = 0.5


def _shown(value: object) -> str:
    """A found value for an error message: scalars as themselves (cut short), others by type."""
    if value is None or isinstance(value, (str, int, float)):
        return f"`{printable(value, 40)}`"
    return f"`{type(value).__name__}`"


def read_health_check(mapping: Mapping[str, Any]) -> HealthCheckConfig:
    """Validate a ``health_check`` block, or ``{"health_check": {...}}``, as
    the loader validates it inside a registration (units read, every problem
    reported with its JSON path in one RegistryError)."""
    root, block = "$", mapping
    if isinstance(mapping, Mapping) and set(mapping) == {"health_check"}:
        root, block = "$.health_check", mapping["health_check"]
    [(_, config)] = validate_documents([("health_check", root, block)], HealthCheckConfig)
    return config


# --------------------------------------------------------------------------
# Check results and incidents


def _require_aware(moment: object, what: str) -> datetime:
    if isinstance(moment, datetime) and moment.utcoffset() is not None:
        return moment
    found = f"`{moment.isoformat()}` (no timezone)" if isinstance(moment, datetime) else _shown(moment)
    raise _error(f"Expected a timezone-aware datetime for `{what}`, got {found}")


class CheckResult(msgspec.Struct, frozen=True, kw_only=True):
    """What one check reported at `at` (timezone aware).

    `ok` is the check's own verdict: ``False`` when it failed (unreachable,
    timed out); `value` is the measurement: latency in seconds, error rate in
    percent. A check passes when ``ok`` is True, or when ``ok`` is None and it
    measured a value; reporting neither counts as a failed check.
    """

    name: str
    at: datetime
    ok: bool | None = None
    value: float | None = None

    def __post_init__(self) -> None:
        _require_aware(self.at, "at")
        if self.value is not None and not math.isfinite(self.value):
            raise _error(f"Expected a finite `value` for check `{self.name}`, got {_shown(self.value)}")

    @property
    def passed(self) -> bool:
        return self.ok is True or (self.ok is None and self.value is not None)


# --------------------------------------------------------------------------
# Tracker


class StatusSink(Protocol):
    """What the tracker needs from a registry: `prism_match.Registry` is one.

    Only `update` is required. When the registry also has
    ``record_health(backend_id, *, checked_at, incidents)`` the tracker
    writes every round's time and the incident log through it; with
    ``__contains__`` it checks backend ids against the live set; with
    ``__getitem__`` it starts each backend from the registration's status and
    reads the registration's own ``health_check`` block when the tracker was
    given no config.
    """

    def update(
        self, backend_id: str, *, status: str | None = None, uptime: float | None = None
    ) -> object: ...


@dataclass(frozen=True, slots=True)
class _Rules:
    """One config, read once: its checks by name and their total weight."""

    config: HealthCheckConfig
    checks_by_name: dict[str, CheckSpec]
    total_weight: float

    @classmethod
    def of(cls, config: HealthCheckConfig) -> _Rules:
        return cls(config, {check.name: check for check in config.checks},
                   sum(check.weight for check in config.checks))


_DEFAULT_RULES = _Rules.of(HealthCheckConfig())


class _RoundOutcome(enum.Enum):
    FAILED = "failed"
    DEGRADED = "degraded"
    SUCCEEDED = "succeeded"


@dataclass(frozen=True, slots=True)
class _Breach:
    """A passing check whose value crossed its threshold."""

    check: CheckSpec
    value: float


@dataclass(slots=True)
class _BackendHealth:
    """The tracker's mutable state for one backend."""

    status: HealthStatus
    rules: _Rules
    consecutive_successes: int = 0
    consecutive_failures: int = 0
    last_at: datetime | None = None
    # (round time, round passed) for the rounds still inside the uptime window.
    rounds: deque[tuple[datetime, bool]] = field(default_factory=deque)
    # Oldest first by `started_at`.
    incidents: list[Incident] = field(default_factory=list)
    # The incident the tracker opened itself and will resolve on recovery.
    automatic_incident: Incident | None = None


def _measure(check_name: str, value: float) -> str:
    """Show a check's value in its natural unit, for incident descriptions."""
    if check_name == "latency":
        return f"{value * 1000:g}ms"
    if check_name == "error_rate":
        return f"{value:g}%"
    return f"{value:g}"


def _crossings(breaches: Iterable[_Breach]) -> str:
    """``latency 150ms > 100ms, error_rate 2.5% > 1%``"""
    return ", ".join(
        f"{breach.check.name} {_measure(breach.check.name, breach.value)}"
        f" > {_measure(breach.check.name, breach.check.threshold)}"
        for breach in breaches
    )


class HealthTracker:
    """Per-backend health state machine fed with rounds of check results.

    A round FAILS when the ``connectivity`` check (if configured) did not
    pass, or when the checks that passed carry less than
    `PASSING_WEIGHT_SHARE` (50 %) of the total configured weight; a
    configured check missing from the round did not pass. A round that does
    not fail is DEGRADED when a passing check's value is above (``>``) its
    threshold, otherwise it SUCCEEDS.

    Status rules:

    * ``unhealthy`` after ``unhealthy_threshold`` consecutive failed rounds;
    * ``degraded`` at once after a degraded round, from any status;
    * ``healthy`` after ``healthy_threshold`` consecutive successful rounds;
    * otherwise the status stays (one failed round does not demote a healthy
      backend, one good round does not promote a degraded one);
    * ``maintenance`` only through `set_maintenance`. Rounds recorded during
      maintenance count toward uptime (the backend was in fact unavailable
      or not) but change no status. Leaving maintenance gives ``unknown``
      and the counts start again, so the thresholds must be met by rounds
      after the maintenance.

    Every status change calls ``registry.update(backend_id, status=...,
    uptime=...)`` once, with the 24 h uptime at that moment; nothing else
    calls it. When the update raises, the status stays as it was and the
    next round retries.

    Incidents: one opens automatically when a backend becomes ``degraded``
    (severity ``warning``) or ``unhealthy`` (``critical``) and none of its
    own is open - also from ``unknown``, since a backend that fails right
    after start or maintenance is as much an incident as one that fails after
    being healthy. It escalates to ``critical`` if the backend goes on to be
    unhealthy, keeping its start time, and is resolved when the backend is
    ``healthy`` again. Incidents opened with `open_incident` are resolved
    only by `resolve_incident`.

    Times must be timezone aware and, per backend, must not go backwards.
    Methods take ``at``; it may be omitted only when the tracker was given a
    ``clock``.

    ``config``: one `HealthCheckConfig` (or its mapping) for every backend;
    without one, each backend follows its registration's ``health_check``
    block (or the defaults: one connectivity check, 2 and 3 rounds). A
    backend starts from ``initial_status``, else from the status its
    registration holds in the registry, else ``unknown``. With a
    `prism_match.Registry` every round's time and the incident log are
    written through ``registry.record_health``, so ``registry[id].health``
    shows ``last_check_at`` and ``recent_incidents`` live.
    """

    def __init__(
        self,
        registry: StatusSink,
        config: HealthCheckConfig | Mapping[str, Any] | None = None,
        *,
        clock: Callable[[], datetime] | None = None,
        initial_status: Mapping[str, HealthStatus] | None = None,
    ) -> None:
        self._registry = registry
        if config is None or isinstance(config, HealthCheckConfig):
            self._config = config
        else:
            self._config = read_health_check(config)
        self._rules = _Rules.of(self._config) if self._config is not None else None
        self._clock = clock
        # A live registry gains and loses backends (add/remove): ask it each
        # time. A sink that only lists ids is read once.
        if hasattr(registry, "__contains__"):
            self._knows: Callable[[str], bool] | None = registry.__contains__
        else:
            backend_ids = getattr(registry, "backend_ids", None)
            self._knows = frozenset(backend_ids).__contains__ if backend_ids is not None else None
        self._record_health = getattr(registry, "record_health", None)
        self._initial_status: dict[str, HealthStatus] = {}
        for backend_id, status in (initial_status or {}).items():
            self._require_known(backend_id)
            if status not in HEALTH_STATUSES:
                raise _error(
                    f"Expected a status in {'|'.join(HEALTH_STATUSES)} for `{backend_id}`, got {_shown(status)}"
                )
            self._initial_status[backend_id] = status
        self._backends: dict[str, _BackendHealth] = {}

    @property
    def config(self) -> HealthCheckConfig | None:
        """The config every backend follows, or None when each follows its registration's block."""
        return self._config

    def config_for(self, backend_id: str) -> HealthCheckConfig:
        """The thresholds and checks this backend's rounds are judged by."""
        return self._state(backend_id).rules.config

    # -- queries -----------------------------------------------------------

    def status(self, backend_id: str) -> HealthStatus:
        """The backend's current status: ``unknown`` (or its initial status) until rounds decide."""
        return self._state(backend_id).status

    def incidents(self, backend_id: str) -> list[Incident]:
        """The backend's incidents, open and resolved, oldest first."""
        return list(self._state(backend_id).incidents)

    def uptime_percent_24h(self, backend_id: str, *, at: datetime | None = None) -> float | None:
        """Percent of the rounds in the 24 h before `at` that did not fail.

        `at` defaults to the backend's latest round and may not precede it.
        Degraded rounds count as up. None when the window holds no round.
        """
        state = self._state(backend_id)
        if at is None:
            at = state.last_at
            if at is None:
                return None
        else:
            self._require_in_order(state, backend_id, _require_aware(at, "at"))
        return self._uptime(state, at)

    # -- updates -----------------------------------------------------------

    def record(
        self, backend_id: str, results: Iterable[CheckResult], at: datetime | None = None
    ) -> HealthStatus:
        """Evaluate one round of check results taken at `at`; return the status after it."""
        state = self._state(backend_id)
        outcome, breaches = self._evaluate(state.rules, results)
        at = self._time(at)
        self._require_in_order(state, backend_id, at)
        try:
            self._record_round(backend_id, state, outcome, breaches, at)
        finally:
            # Written even when a status update failed: the round did happen.
            self._write_through(backend_id, state, checked_at=at)
        return state.status

    def _record_round(self, backend_id: str, state: _BackendHealth, outcome: _RoundOutcome,
                      breaches: tuple[_Breach, ...], at: datetime) -> None:
        config = state.rules.config

        state.last_at = at
        state.rounds.append((at, outcome is not _RoundOutcome.FAILED))
        while state.rounds and state.rounds[0][0] <= at - UPTIME_WINDOW:
            state.rounds.popleft()
        if state.status == "maintenance":
            return

        if outcome is _RoundOutcome.FAILED:
            state.consecutive_failures += 1
            state.consecutive_successes = 0
            if state.consecutive_failures >= config.unhealthy_threshold:
                failures = state.consecutive_failures
                self._change_status(
                    backend_id,
                    state,
                    "unhealthy",
                    at,
                    lambda: f"`{backend_id}` unhealthy: {failures} consecutive failed round{'s' if failures > 1 else ''}",
                )
        elif outcome is _RoundOutcome.DEGRADED:
            state.consecutive_failures = 0
            state.consecutive_successes = 0
            self._change_status(
                backend_id, state, "degraded", at, lambda: f"`{backend_id}` degraded: {_crossings(breaches)}"
            )
        else:
            state.consecutive_successes += 1
            state.consecutive_failures = 0
            if state.consecutive_successes >= config.healthy_threshold:
                self._change_status(backend_id, state, "healthy", at, None)

    def set_maintenance(self, backend_id: str, on: bool, at: datetime | None = None) -> HealthStatus:
        """Enter (``on=True``) or leave maintenance; return the new status.

        Leaving gives ``unknown``. Asking for the state the backend is already
        in changes nothing.
        """
        state = self._state(backend_id)
        at = self._time(at)
        self._require_in_order(state, backend_id, at)
        in_maintenance = state.status == "maintenance"
        if on == in_maintenance:
            return state.status
        state.last_at = at
        state.consecutive_successes = 0
        state.consecutive_failures = 0
        self._change_status(backend_id, state, "maintenance" if on else "unknown", at, None)
        self._write_through(backend_id, state)
        return state.status

    def open_incident(
        self,
        backend_id: str,
        *,
        severity: Severity,
        at: datetime | None = None,
        description: str | None = None,
        impact: str | None = None,
        root_cause: str | None = None,
        remediation: str | None = None,
    ) -> Incident:
        """Open an incident by hand, started at `at` (which may be in the past)."""
        state = self._state(backend_id)
        incident = Incident(
            started_at=self._time(at),
            severity=severity,
            description=description,
            impact=impact,
            root_cause=root_cause,
            remediation=remediation,
        )
        bisect.insort(state.incidents, incident, key=lambda logged: logged.started_at)
        self._write_through(backend_id, state)
        return incident

    def resolve_incident(
        self,
        backend_id: str,
        incident: Incident,
        *,
        at: datetime | None = None,
        root_cause: str | None = None,
        remediation: str | None = None,
    ) -> Incident:
        """Resolve an open incident of the backend at `at`; return the resolved record.

        `root_cause` and `remediation`, when given, replace the incident's.
        """
        state = self._state(backend_id)
        logged = next((candidate for candidate in state.incidents if candidate is incident), None)
        if logged is None:
            logged = next((candidate for candidate in state.incidents if candidate == incident), None)
        if logged is None:
            raise _error(f"no such incident for `{backend_id}`: {incident!r}")
        if not logged.is_open:
            raise _error(
                f"incident of `{backend_id}` started {logged.started_at.isoformat()} is already resolved"
            )
        changes: dict[str, Any] = {"resolved_at": self._time(at)}
        if root_cause is not None:
            changes["root_cause"] = root_cause
        if remediation is not None:
            changes["remediation"] = remediation
        resolved = self._replace_incident(state, logged, **changes)
        if state.automatic_incident is logged:
            state.automatic_incident = None
        self._write_through(backend_id, state)
        return resolved

    # -- internals ---------------------------------------------------------

    def _require_known(self, backend_id: str) -> None:
        if self._knows is not None and not self._knows(backend_id):
            raise _error(f"unknown backend `{printable(backend_id, 60)}`")

    def _state(self, backend_id: str) -> _BackendHealth:
        state = self._backends.get(backend_id)
        if state is None:
            self._require_known(backend_id)
            registration = self._registration(backend_id)
            status = self._initial_status.get(backend_id)
            if status is None:
                # Start from what the registry says (a backend the operator put
                # in maintenance stays there until `set_maintenance(.., False)`).
                status = registration.health_status if registration is not None else "unknown"
            rules = self._rules
            if rules is None:
                block = registration.health_check if registration is not None else None
                rules = _Rules.of(block) if block is not None else _DEFAULT_RULES
            state = _BackendHealth(status=status, rules=rules)
            self._backends[backend_id] = state
        return state

    def _registration(self, backend_id: str) -> Any:
        getitem = getattr(self._registry, "__getitem__", None)
        if getitem is None:
            return None
        try:
            found = getitem(backend_id)
        except (KeyError, LookupError):
            return None
        return found if hasattr(found, "health_status") else None

    def _write_through(self, backend_id: str, state: _BackendHealth, checked_at: datetime | None = None) -> None:
        if self._record_health is not None:
            self._record_health(backend_id, checked_at=checked_at, incidents=tuple(state.incidents))

    def forget(self, backend_id: str) -> None:
        """Drop a backend's state (it left the registry); unknown ids are ignored."""
        self._backends.pop(backend_id, None)

    def _time(self, at: datetime | None) -> datetime:
        if at is None:
            if self._clock is None:
                raise _error("Expected `at`: this tracker has no clock")
            at = self._clock()
        return _require_aware(at, "at")

    @staticmethod
    def _require_in_order(state: _BackendHealth, backend_id: str, at: datetime) -> None:
        if state.last_at is not None and at < state.last_at:
            raise _error(
                f"Expected times for `{backend_id}` in order: got {at.isoformat()},"
                f" before the last one, {state.last_at.isoformat()}"
            )

    @staticmethod
    def _evaluate(rules: _Rules, results: Iterable[CheckResult]) -> tuple[_RoundOutcome, tuple[_Breach, ...]]:
        """Classify one round; raises before any state changes when the results are malformed."""
        results_by_name: dict[str, CheckResult] = {}
        for result in results:
            if result.name not in rules.checks_by_name:
                configured = ", ".join(f"`{name}`" for name in rules.checks_by_name)
                raise _error(f"check `{printable(result.name, 60)}` is not configured (configured: {configured})")
            if result.name in results_by_name:
                raise _error(f"check `{printable(result.name, 60)}` reported twice in one round")
            results_by_name[result.name] = result

        passed_weight = 0.0
        breaches: list[_Breach] = []
        for check in rules.config.checks:
            result = results_by_name.get(check.name)
            if result is None or not result.passed:
                if check.name == "connectivity":
                    return _RoundOutcome.FAILED, ()
                continue
            passed_weight += check.weight
            if check.threshold is not None and result.value is not None and result.value > check.threshold:
                breaches.append(_Breach(check, result.value))

        if passed_weight < PASSING_WEIGHT_SHARE * rules.total_weight:
            return _RoundOutcome.FAILED, ()
        if breaches:
            return _RoundOutcome.DEGRADED, tuple(breaches)
        return _RoundOutcome.SUCCEEDED, ()

    @staticmethod
    def _uptime(state: _BackendHealth, at: datetime) -> float | None:
        window_start = at - UPTIME_WINDOW
        outcomes = [passed for when, passed in state.rounds if when > window_start]
        if not outcomes:
            return None
        return 100.0 * sum(outcomes) / len(outcomes)

    def _change_status(
        self,
        backend_id: str,
        state: _BackendHealth,
        new_status: HealthStatus,
        at: datetime,
        describe: Callable[[], str] | None,
    ) -> None:
        """Apply a status change to the registry first, then to the tracker and its incidents.

        `describe` gives the text of an incident this change opens; it is
        called only then, so rounds that change nothing format nothing.
        """
        if new_status == state.status:
            return
        self._registry.update(backend_id, status=new_status, uptime=self._uptime(state, at))
        _log.info("health: `%s` %s -> %s at %s", backend_id, state.status, new_status, at.isoformat())
        state.status = new_status

        automatic = state.automatic_incident
        if new_status == "healthy":
            if automatic is not None:
                self._replace_incident(state, automatic, resolved_at=at)
                state.automatic_incident = None
        elif new_status in ("degraded", "unhealthy"):
            severity = "critical" if new_status == "unhealthy" else "warning"
            if automatic is None:
                description = describe() if describe is not None else None
                opened = Incident(started_at=at, severity=severity, description=description)
                bisect.insort(state.incidents, opened, key=lambda logged: logged.started_at)
                state.automatic_incident = opened
            elif severity == "critical" and automatic.severity != "critical":
                state.automatic_incident = self._replace_incident(state, automatic, severity="critical")

    @staticmethod
    def _replace_incident(state: _BackendHealth, incident: Incident, **changes: Any) -> Incident:
        """Swap a logged incident for an updated copy; `started_at` is kept, so its place is too."""
        updated = msgspec.structs.replace(incident, **changes)
        index = next(position for position, logged in enumerate(state.incidents) if logged is incident)
        state.incidents[index] = updated
        return updated
