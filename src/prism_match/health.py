"""Backend health: check results in, status, uptime and incidents out.

Callers run the seed's health checks (connectivity, latency, error rate) on
their own schedule and feed each round's `CheckResult` values to a
`HealthTracker`. The tracker derives every backend's status from the
`HealthCheckConfig` thresholds, keeps a rolling 24 h uptime and an incident
log, and applies each status change to the registry through
`registry.update(backend_id, status=..., uptime=...)`, so the next match sees
it. It runs no network checks and never reads the wall clock: every time
comes from the caller, or from a clock the caller hands in.
"""

from __future__ import annotations

import bisect
import enum
import logging
import math
import re
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any, Protocol

import msgspec

from .schema import HEALTH_STATUSES, SEVERITIES, HealthStatus, Severity

_log = logging.getLogger("prism_match")

__all__ = [
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
]

# The registry's statuses and severities (schema.py). `unknown` is not in the
# seed's table; it is what a backend is before enough rounds have been seen,
# as the contract's `health_statuses` default implies.

UPTIME_WINDOW = timedelta(hours=24)

# A round fails when the checks that passed carry less than this share of the
# configured weight: one weak check alone cannot keep a backend up.
PASSING_WEIGHT_SHARE = 0.5


# --------------------------------------------------------------------------
# Units

_NANOSECONDS_PER_UNIT = {"ns": 1, "us": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
# Longer unit names come first so that `ms` is not read as `m` followed by `s`.
_DURATION_PART = r"(\d+(?:\.\d*)?|\.\d+)(ns|us|ms|s|m|h)"
_DURATION_RE = re.compile(f"(?:{_DURATION_PART})+")
_DURATION_PART_RE = re.compile(_DURATION_PART)
_PERCENT_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)%")


_SHOWN_LENGTH = 40


def _shown(value: object) -> str:
    """Render a found value for an error message: scalars as themselves, others by type.

    Long strings are cut so that junk input cannot flood a log line.
    """
    if isinstance(value, str) and len(value) > _SHOWN_LENGTH:
        return f"`{value[:_SHOWN_LENGTH]}…` ({len(value)} characters)"
    if value is None or isinstance(value, (str, int, float)):
        return f"`{value}`"
    return f"`{type(value).__name__}`"


def _seconds(text: object) -> float:
    """Parse a duration such as ``30s``, ``100ms`` or ``1m30s`` into seconds.

    Units are ``ns us ms s m h`` and may be combined. A bare number is
    rejected: ``30`` could mean seconds or milliseconds.
    """
    expected = "Expected a duration with units ns|us|ms|s|m|h such as `30s` or `1m30s`"
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        raise ValueError(f"{expected}, got {_shown(text)} (a bare number is ambiguous)")
    if not isinstance(text, str) or not _DURATION_RE.fullmatch(text):
        raise ValueError(f"{expected}, got {_shown(text)}")
    # Summing in nanoseconds and dividing once keeps `100ms` exactly 0.1.
    nanoseconds = sum(
        float(number) * _NANOSECONDS_PER_UNIT[unit] for number, unit in _DURATION_PART_RE.findall(text)
    )
    seconds = nanoseconds / 1e9
    if not math.isfinite(seconds):  # hundreds of digits overflow to infinity
        raise ValueError(f"{expected}, got a duration too long to represent")
    return seconds


def _percent(value: object) -> float:
    """Parse a percentage: ``"1%"`` or a plain number of percent, within [0, 100]."""
    expected = "Expected a percentage in [0, 100] such as `1%` or `0.5`"
    if isinstance(value, str) and (match := _PERCENT_RE.fullmatch(value)):
        percent = float(match.group(1))
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        percent = float(value)
    else:
        raise ValueError(f"{expected}, got {_shown(value)}")
    if not 0.0 <= percent <= 100.0:  # also rejects NaN
        raise ValueError(f"{expected}, got {_shown(value)}")
    return percent


def _finite_number(value: object) -> object:
    """Reject NaN and infinities, which msgspec's bounds let through; leave the rest to msgspec."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"Expected a finite number, got {_shown(value)}")
    return value


def _at_path(parse: Callable[[object], Any], value: object, path: str) -> Any:
    """Run one field parser and name the field's path in its error."""
    try:
        return parse(value)
    except ValueError as error:
        raise ValueError(f"{error} - at `{path}`") from None


def _rooted(message: str, root: str) -> str:
    """Make a msgspec error path absolute: msgspec says nothing at the root and counts from `$`."""
    head, separator, tail = message.rpartition(" - at `$")
    if not separator:
        return f"{message} - at `{root}`"
    return f"{head} - at `{root}{tail}"


# --------------------------------------------------------------------------
# Configuration

NonNegativeFloat = Annotated[float, msgspec.Meta(ge=0)]
PositiveSeconds = Annotated[float, msgspec.Meta(gt=0)]
RoundCount = Annotated[int, msgspec.Meta(ge=1)]


class CheckSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One configured check of a round.

    `threshold` is in the check's own unit: seconds for ``latency``, percent
    for ``error_rate``, the reported number for any other check. A passing
    check whose value is above it (``>``) makes the round degraded.
    """

    name: Annotated[str, msgspec.Meta(min_length=1)]
    weight: NonNegativeFloat = 1.0
    threshold: NonNegativeFloat | None = None
    command: str | None = None


class HealthCheckConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The seed's ``health_check`` block, durations in seconds.

    Build it from YAML or JSON data with `from_mapping`, which reads the
    units; the constructor takes seconds and percent as floats. Without
    `checks`, a round is one connectivity check.
    """

    endpoint: str | None = None
    interval: PositiveSeconds = 30.0
    timeout: PositiveSeconds = 5.0
    healthy_threshold: RoundCount = 2
    unhealthy_threshold: RoundCount = 3
    checks: Annotated[tuple[CheckSpec, ...], msgspec.Meta(min_length=1)] = (CheckSpec(name="connectivity"),)

    def __post_init__(self) -> None:
        names = [check.name for check in self.checks]
        for index, name in enumerate(names):
            if name in names[:index]:
                raise ValueError(f"Expected unique check names, got `{name}` twice")
        if sum(check.weight for check in self.checks) <= 0:
            raise ValueError("Expected checks with a total `weight` > 0, got 0")

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> HealthCheckConfig:
        """Validate the block itself or ``{"health_check": {...}}``.

        Bad input raises `ValueError` saying what was expected, what was
        found and where, as a JSON path such as ``$.checks[1].threshold``
        (prefixed by ``$.health_check`` when the block came wrapped).
        """
        if not isinstance(mapping, Mapping):
            raise ValueError(f"Expected `object`, got {_shown(mapping)} - at `$`")
        root, block = "$", mapping
        if set(mapping) == {"health_check"}:
            root, block = "$.health_check", mapping["health_check"]
            if not isinstance(block, Mapping):
                raise ValueError(f"Expected `object`, got {_shown(block)} - at `{root}`")
        normalized = _with_units_read(block, root)
        try:
            return msgspec.convert(normalized, cls)
        except msgspec.ValidationError as error:
            raise ValueError(_rooted(str(error), root)) from None


def _with_units_read(block: Mapping[str, Any], root: str) -> dict[str, Any]:
    """Turn unit strings into floats; every other check is left to msgspec."""
    normalized = dict(block)
    for key in ("interval", "timeout"):
        if key in normalized:
            normalized[key] = _at_path(_seconds, normalized[key], f"{root}.{key}")
    checks = normalized.get("checks")
    if isinstance(checks, (list, tuple)):
        normalized["checks"] = [
            _check_with_units_read(check, f"{root}.checks[{index}]") for index, check in enumerate(checks)
        ]
    return normalized


# The unit of a threshold follows from the check it belongs to.
_THRESHOLD_PARSERS: dict[str, Callable[[object], Any]] = {"latency": _seconds, "error_rate": _percent}


def _check_with_units_read(check: object, path: str) -> object:
    """Read one check's threshold in the unit its name implies."""
    if not isinstance(check, Mapping):
        return check
    normalized = dict(check)
    if "weight" in normalized:
        _at_path(_finite_number, normalized["weight"], f"{path}.weight")
    if normalized.get("threshold") is not None:
        name = normalized.get("name")
        parse_threshold = (
            _THRESHOLD_PARSERS.get(name, _finite_number) if isinstance(name, str) else _finite_number
        )
        normalized["threshold"] = _at_path(parse_threshold, normalized["threshold"], f"{path}.threshold")
    return normalized


# --------------------------------------------------------------------------
# Check results and incidents


def _require_aware(moment: object, what: str) -> datetime:
    if isinstance(moment, datetime) and moment.utcoffset() is not None:
        return moment
    found = f"`{moment.isoformat()}` (no timezone)" if isinstance(moment, datetime) else _shown(moment)
    raise ValueError(f"Expected a timezone-aware datetime for `{what}`, got {found}")


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
            raise ValueError(f"Expected a finite `value` for check `{self.name}`, got {_shown(self.value)}")

    @property
    def passed(self) -> bool:
        return self.ok is True or (self.ok is None and self.value is not None)


class Incident(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The seed's incident record; `resolved_at` is None while it is open."""

    started_at: datetime
    severity: Severity
    resolved_at: datetime | None = None
    description: str | None = None
    impact: str | None = None
    root_cause: str | None = None
    remediation: str | None = None

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"Expected `severity` one of info|warning|critical, got {_shown(self.severity)}")
        _require_aware(self.started_at, "started_at")
        if self.resolved_at is not None:
            _require_aware(self.resolved_at, "resolved_at")
            if self.resolved_at < self.started_at:
                raise ValueError(f"Expected `resolved_at` >= `started_at` ({self.started_at.isoformat()})")

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None


# --------------------------------------------------------------------------
# Tracker


class StatusSink(Protocol):
    """What the tracker needs from a registry: `prism_match.Registry` is one."""

    def update(
        self, backend_id: str, *, status: str | None = None, uptime: float | None = None
    ) -> object: ...


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
    """

    def __init__(
        self,
        registry: StatusSink,
        config: HealthCheckConfig | Mapping[str, Any],
        *,
        clock: Callable[[], datetime] | None = None,
        initial_status: Mapping[str, HealthStatus] | None = None,
    ) -> None:
        self._registry = registry
        self._config = (
            config if isinstance(config, HealthCheckConfig) else HealthCheckConfig.from_mapping(config)
        )
        self._clock = clock
        self._checks_by_name = {check.name: check for check in self._config.checks}
        self._total_weight = sum(check.weight for check in self._config.checks)
        # A registry's set of backends is fixed once loaded (`update` changes
        # live state only), so it is read once rather than on every call.
        backend_ids = getattr(registry, "backend_ids", None)
        self._known_ids = frozenset(backend_ids) if backend_ids is not None else None
        self._initial_status: dict[str, HealthStatus] = {}
        for backend_id, status in (initial_status or {}).items():
            self._require_known(backend_id)
            if status not in HEALTH_STATUSES:
                raise ValueError(
                    f"Expected a status in {'|'.join(HEALTH_STATUSES)} for `{backend_id}`, got {_shown(status)}"
                )
            self._initial_status[backend_id] = status
        self._backends: dict[str, _BackendHealth] = {}

    @property
    def config(self) -> HealthCheckConfig:
        return self._config

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
        outcome, breaches = self._evaluate(results)
        at = self._time(at)
        self._require_in_order(state, backend_id, at)

        state.last_at = at
        state.rounds.append((at, outcome is not _RoundOutcome.FAILED))
        while state.rounds and state.rounds[0][0] <= at - UPTIME_WINDOW:
            state.rounds.popleft()
        if state.status == "maintenance":
            return state.status

        if outcome is _RoundOutcome.FAILED:
            state.consecutive_failures += 1
            state.consecutive_successes = 0
            if state.consecutive_failures >= self._config.unhealthy_threshold:
                failures = state.consecutive_failures
                self._change_status(
                    backend_id,
                    state,
                    "unhealthy",
                    at,
                    lambda: f"`{backend_id}` unhealthy: {failures} consecutive failed rounds",
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
            if state.consecutive_successes >= self._config.healthy_threshold:
                self._change_status(backend_id, state, "healthy", at, None)
        return state.status

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
            raise ValueError(f"no such incident for `{backend_id}`: {incident!r}")
        if not logged.is_open:
            raise ValueError(
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
        return resolved

    # -- internals ---------------------------------------------------------

    def _require_known(self, backend_id: str) -> None:
        if self._known_ids is not None and backend_id not in self._known_ids:
            raise ValueError(f"unknown backend `{backend_id}`")

    def _state(self, backend_id: str) -> _BackendHealth:
        state = self._backends.get(backend_id)
        if state is None:
            self._require_known(backend_id)
            state = _BackendHealth(status=self._initial_status.get(backend_id, "unknown"))
            self._backends[backend_id] = state
        return state

    def _time(self, at: datetime | None) -> datetime:
        if at is None:
            if self._clock is None:
                raise ValueError("Expected `at`: this tracker has no clock")
            at = self._clock()
        return _require_aware(at, "at")

    @staticmethod
    def _require_in_order(state: _BackendHealth, backend_id: str, at: datetime) -> None:
        if state.last_at is not None and at < state.last_at:
            raise ValueError(
                f"Expected times for `{backend_id}` in order: got {at.isoformat()},"
                f" before the last one, {state.last_at.isoformat()}"
            )

    def _evaluate(self, results: Iterable[CheckResult]) -> tuple[_RoundOutcome, tuple[_Breach, ...]]:
        """Classify one round; raises before any state changes when the results are malformed."""
        results_by_name: dict[str, CheckResult] = {}
        for result in results:
            if result.name not in self._checks_by_name:
                configured = ", ".join(f"`{name}`" for name in self._checks_by_name)
                raise ValueError(f"check `{result.name}` is not configured (configured: {configured})")
            if result.name in results_by_name:
                raise ValueError(f"check `{result.name}` reported twice in one round")
            results_by_name[result.name] = result

        passed_weight = 0.0
        breaches: list[_Breach] = []
        for check in self._config.checks:
            result = results_by_name.get(check.name)
            if result is None or not result.passed:
                if check.name == "connectivity":
                    return _RoundOutcome.FAILED, ()
                continue
            passed_weight += check.weight
            if check.threshold is not None and result.value is not None and result.value > check.threshold:
                breaches.append(_Breach(check, result.value))

        if passed_weight < PASSING_WEIGHT_SHARE * self._total_weight:
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
