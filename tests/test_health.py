"""Tests for `prism_match.health`: config parsing, round evaluation, status
transitions, maintenance, incidents, uptime and the registry updates."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
import yaml

from prism_match.errors import RegistryError
from prism_match.health import (
    CheckResult,
    CheckSpec,
    HealthCheckConfig,
    HealthTracker,
    Incident,
    read_health_check,
)

# /work/shared/seed/yaml/health-check.yaml, copied so that CI needs no seed checkout.
SEED_HEALTH_CHECK_YAML = """\
# Seed "Health Monitoring > Health Checks". Reconstructed.
health_check:
  endpoint: /health
  interval: 30s
  timeout: 5s
  healthy_threshold: 2 # Consecutive successes to mark healthy
  unhealthy_threshold: 3 # Consecutive failures to mark unhealthy

  checks:
    - name: connectivity
      weight: 1.0
      command: "ping backend"

    - name: latency
      weight: 0.8
      threshold: 100ms
      command: "measure p99 latency"

    - name: error_rate
      weight: 1.0
      threshold: 1% # More than 1% errors = degraded
      command: "check error rate"
"""

# /work/shared/seed/yaml/incident.yaml, copied likewise.
SEED_INCIDENT_YAML = """\
incident:
  started_at: 2025-11-15T14:22:00Z
  resolved_at: 2025-11-15T14:45:00Z
  severity: warning # info | warning | critical
  description: "Elevated latency in partition 12"
  impact: "P99 latency increased from 25ms to 150ms"
  root_cause: "Network congestion in AZ-1a"
  remediation: "Traffic shifted to AZ-1b"
"""

SEED_CONFIG = read_health_check(yaml.safe_load(SEED_HEALTH_CHECK_YAML))

T0 = datetime(2025, 11, 16, 10, 0, tzinfo=UTC)
INTERVAL = timedelta(seconds=30)
BACKEND = "postgres-primary"
OTHER_BACKEND = "kafka-prod-us-east-1"

# Round shorthands for the seed's checks: (connectivity ok, latency s, error rate %).
# A `down` backend reports no latency or error rate at all.
ROUND_KINDS = {
    "ok": (True, 0.025, 0.1),
    "slow": (True, 0.150, 0.1),
    "errors": (True, 0.025, 2.5),
    "down": (False, None, None),
}


class FakeRegistry:
    """Records every `update` call; knows a fixed set of backends."""

    def __init__(self, backend_ids=(BACKEND, OTHER_BACKEND)):
        self.backend_ids = list(backend_ids)
        self.calls: list[tuple[str, str | None, float | None]] = []

    def update(self, backend_id, *, status=None, uptime=None):
        self.calls.append((backend_id, status, uptime))


class RegistryWithoutIds:
    """A registry that cannot say which backends exist."""

    def __init__(self):
        self.calls = []

    def update(self, backend_id, *, status=None, uptime=None):
        self.calls.append((backend_id, status, uptime))


def round_of(kind: str, at: datetime) -> list[CheckResult]:
    connectivity_ok, latency, error_rate = ROUND_KINDS[kind]
    results = [CheckResult(name="connectivity", ok=connectivity_ok, at=at)]
    if latency is not None:
        results.append(CheckResult(name="latency", value=latency, at=at))
    if error_rate is not None:
        results.append(CheckResult(name="error_rate", value=error_rate, at=at))
    return results


def make_tracker(config=SEED_CONFIG, **options):
    registry = FakeRegistry()
    return HealthTracker(registry, config, **options), registry


def play(tracker, kinds, *, backend_id=BACKEND, start=T0):
    """Record one round per kind, 30 s apart; return the status after each."""
    statuses = []
    for index, kind in enumerate(kinds):
        at = start + index * INTERVAL
        statuses.append(tracker.record(backend_id, round_of(kind, at), at))
    return statuses


# --------------------------------------------------------------------------
# Status transitions


@pytest.mark.parametrize(
    ("kinds", "expected"),
    [
        pytest.param(["ok", "ok"], ["unknown", "healthy"], id="two-successes-make-healthy"),
        pytest.param(["down"] * 3, ["unknown", "unknown", "unhealthy"], id="three-failures-make-unhealthy"),
        pytest.param(
            ["down", "down", "ok", "down", "down", "down"],
            ["unknown"] * 5 + ["unhealthy"],
            id="a-success-restarts-the-failure-count",
        ),
        pytest.param(
            ["ok", "ok", "down", "down", "ok"], ["unknown"] + ["healthy"] * 4, id="blips-keep-healthy"
        ),
        pytest.param(["slow"], ["degraded"], id="slow-degrades-at-once-from-unknown"),
        pytest.param(["errors"], ["degraded"], id="errors-degrade-at-once"),
        pytest.param(
            ["ok", "ok", "slow", "ok", "ok"],
            ["unknown", "healthy", "degraded", "degraded", "healthy"],
            id="degraded-needs-two-successes",
        ),
        pytest.param(
            ["slow", "ok", "slow", "ok"],
            ["degraded"] * 4,
            id="a-degraded-round-restarts-the-success-count",
        ),
        pytest.param(
            ["down", "down", "down", "ok", "ok"],
            ["unknown", "unknown", "unhealthy", "unhealthy", "healthy"],
            id="unhealthy-recovers-after-two-successes",
        ),
        pytest.param(
            ["down", "down", "down", "errors"],
            ["unknown", "unknown", "unhealthy", "degraded"],
            id="unhealthy-to-degraded-when-operational-again",
        ),
        pytest.param(
            ["slow", "down", "down", "down"],
            ["degraded", "degraded", "degraded", "unhealthy"],
            id="degraded-to-unhealthy",
        ),
        pytest.param(
            ["down", "down", "slow", "down", "down"],
            ["unknown", "unknown", "degraded", "degraded", "degraded"],
            id="a-degraded-round-restarts-the-failure-count",
        ),
    ],
)
def test_status_after_each_round(kinds, expected):
    tracker, _ = make_tracker()
    assert play(tracker, kinds) == expected
    assert tracker.status(BACKEND) == expected[-1]


@pytest.mark.parametrize(
    ("healthy_threshold", "unhealthy_threshold", "kinds", "expected"),
    [
        (1, 1, ["ok", "down", "ok"], ["healthy", "unhealthy", "healthy"]),
        (3, 2, ["ok", "ok", "ok", "down", "down"], ["unknown", "unknown", "healthy", "healthy", "unhealthy"]),
    ],
)
def test_thresholds_come_from_the_config(healthy_threshold, unhealthy_threshold, kinds, expected):
    config = msgspec.structs.replace(
        SEED_CONFIG, healthy_threshold=healthy_threshold, unhealthy_threshold=unhealthy_threshold
    )
    tracker, _ = make_tracker(config)
    assert play(tracker, kinds) == expected


def test_backends_are_tracked_separately():
    tracker, _ = make_tracker()
    play(tracker, ["down"] * 3, backend_id=BACKEND)
    play(tracker, ["ok"] * 2, backend_id=OTHER_BACKEND)
    assert (tracker.status(BACKEND), tracker.status(OTHER_BACKEND)) == ("unhealthy", "healthy")


# --------------------------------------------------------------------------
# Round evaluation


@pytest.mark.parametrize(
    ("check", "value", "expected"),
    [
        pytest.param("latency", 0.100, "healthy", id="latency-at-threshold-passes"),
        pytest.param("latency", 0.1000001, "degraded", id="latency-above-threshold-degrades"),
        pytest.param("error_rate", 1.0, "healthy", id="error-rate-at-threshold-passes"),
        pytest.param("error_rate", 1.0001, "degraded", id="error-rate-above-threshold-degrades"),
    ],
)
def test_exactly_at_threshold_does_not_cross(check, value, expected):
    tracker, _ = make_tracker(msgspec.structs.replace(SEED_CONFIG, healthy_threshold=1))
    results = [CheckResult(name="connectivity", ok=True, at=T0)]
    results.append(CheckResult(name=check, value=value, at=T0))
    assert tracker.record(BACKEND, results, T0) == expected


WEIGHTED = HealthCheckConfig(
    healthy_threshold=1,
    unhealthy_threshold=1,
    checks=(CheckSpec(name="replication"), CheckSpec(name="disk"), CheckSpec(name="queue", weight=2.0)),
)


@pytest.mark.parametrize(
    ("config", "reported", "expected"),
    [
        # Seed weights: connectivity 1.0, latency 0.8, error_rate 1.0 -> half is 1.4.
        pytest.param(SEED_CONFIG, {"connectivity": True}, "unhealthy", id="seed-1.0-of-2.8-fails"),
        pytest.param(
            SEED_CONFIG, {"connectivity": True, "latency": True}, "healthy", id="seed-1.8-of-2.8-passes"
        ),
        pytest.param(
            SEED_CONFIG,
            {"connectivity": True, "latency": False, "error_rate": False},
            "unhealthy",
            id="seed-failed-checks-count-like-missing-ones",
        ),
        pytest.param(
            SEED_CONFIG,
            {"connectivity": False, "latency": True, "error_rate": True},
            "unhealthy",
            id="seed-connectivity-fails-the-round-whatever-the-score",
        ),
        pytest.param(WEIGHTED, {"replication": True, "disk": True}, "healthy", id="exactly-half-passes"),
        pytest.param(WEIGHTED, {"queue": True}, "healthy", id="exactly-half-from-one-heavy-check"),
        pytest.param(WEIGHTED, {"replication": True}, "unhealthy", id="a-quarter-fails"),
        pytest.param(WEIGHTED, {}, "unhealthy", id="an-empty-round-fails"),
    ],
)
def test_weighted_score_rule(config, reported, expected):
    tracker, _ = make_tracker(msgspec.structs.replace(config, healthy_threshold=1, unhealthy_threshold=1))
    results = [CheckResult(name=name, ok=ok, at=T0) for name, ok in reported.items()]
    assert tracker.record(BACKEND, results, T0) == expected


@pytest.mark.parametrize(
    ("ok", "value", "passed"),
    [(True, None, True), (None, 0.02, True), (None, None, False), (False, 0.02, False), (False, None, False)],
)
def test_check_result_passes_on_verdict_or_measurement(ok, value, passed):
    assert CheckResult(name="latency", ok=ok, value=value, at=T0).passed is passed


def test_a_failed_check_cannot_degrade():
    tracker, _ = make_tracker(msgspec.structs.replace(SEED_CONFIG, healthy_threshold=1))
    results = [
        CheckResult(name="connectivity", ok=True, at=T0),
        CheckResult(name="latency", ok=False, value=9.0, at=T0),
        CheckResult(name="error_rate", value=0.0, at=T0),
    ]
    assert tracker.record(BACKEND, results, T0) == "healthy"


def test_any_check_with_a_threshold_can_degrade():
    config = HealthCheckConfig(
        healthy_threshold=1,
        checks=(CheckSpec(name="connectivity"), CheckSpec(name="replica_lag", threshold=5.0)),
    )
    tracker, _ = make_tracker(config)
    results = [
        CheckResult(name="connectivity", ok=True, at=T0),
        CheckResult(name="replica_lag", value=7, at=T0),
    ]
    assert tracker.record(BACKEND, results, T0) == "degraded"
    assert tracker.incidents(BACKEND)[0].description == f"`{BACKEND}` degraded: replica_lag 7 > 5"


# --------------------------------------------------------------------------
# Registry updates


def test_registry_updates_exactly_on_status_changes():
    tracker, registry = make_tracker()
    play(tracker, ["ok", "ok", "ok", "slow", "slow", "down", "down", "down", "down", "ok", "ok", "ok"])
    assert registry.calls == [
        (BACKEND, "healthy", 100.0),  # after 2 rounds, both up
        (BACKEND, "degraded", 100.0),  # degraded rounds count as up
        (BACKEND, "unhealthy", 100 * 5 / 8),
        (BACKEND, "healthy", 100 * 7 / 11),
    ]


def test_initial_status_is_reported_without_an_update():
    tracker, registry = make_tracker(initial_status={BACKEND: "healthy"})
    assert tracker.status(BACKEND) == "healthy"
    assert tracker.status(OTHER_BACKEND) == "unknown"
    assert play(tracker, ["down", "ok"]) == ["healthy", "healthy"]
    assert registry.calls == []


def test_an_update_the_registry_rejects_is_retried_on_the_next_round():
    class FlakyRegistry(FakeRegistry):
        def __init__(self):
            super().__init__()
            self.refuse_next = True

        def update(self, backend_id, *, status=None, uptime=None):
            if self.refuse_next:
                self.refuse_next = False
                raise RuntimeError("registry busy")
            super().update(backend_id, status=status, uptime=uptime)

    registry = FlakyRegistry()
    tracker = HealthTracker(registry, SEED_CONFIG)
    tracker.record(BACKEND, round_of("ok", T0), T0)
    with pytest.raises(RuntimeError, match="registry busy"):
        tracker.record(BACKEND, round_of("ok", T0 + INTERVAL), T0 + INTERVAL)
    assert tracker.status(BACKEND) == "unknown"
    assert tracker.record(BACKEND, round_of("ok", T0 + 2 * INTERVAL), T0 + 2 * INTERVAL) == "healthy"
    assert registry.calls == [(BACKEND, "healthy", 100.0)]


# --------------------------------------------------------------------------
# Maintenance


def test_maintenance_freezes_status_and_leaves_to_unknown():
    tracker, registry = make_tracker()
    play(tracker, ["ok", "ok"])
    t = T0 + 2 * INTERVAL
    assert tracker.set_maintenance(BACKEND, True, t) == "maintenance"
    assert play(tracker, ["down"] * 4 + ["slow"], start=t) == ["maintenance"] * 5
    t += 5 * INTERVAL
    assert tracker.set_maintenance(BACKEND, False, t) == "unknown"
    assert play(tracker, ["ok", "ok"], start=t) == ["unknown", "healthy"]
    assert registry.calls == [
        (BACKEND, "healthy", 100.0),
        (BACKEND, "maintenance", 100.0),
        (BACKEND, "unknown", 100 * 3 / 7),  # the four failed maintenance rounds count
        (BACKEND, "healthy", 100 * 5 / 9),
    ]
    assert tracker.incidents(BACKEND) == []


def test_rounds_before_maintenance_do_not_count_after_it():
    tracker, _ = make_tracker()
    play(tracker, ["down", "down"])
    tracker.set_maintenance(BACKEND, True, T0 + 2 * INTERVAL)
    tracker.set_maintenance(BACKEND, False, T0 + 3 * INTERVAL)
    assert play(tracker, ["down", "down", "down"], start=T0 + 4 * INTERVAL) == [
        "unknown",
        "unknown",
        "unhealthy",
    ]


def test_set_maintenance_to_the_current_state_changes_nothing():
    tracker, registry = make_tracker()
    assert tracker.set_maintenance(BACKEND, False, T0) == "unknown"
    tracker.set_maintenance(BACKEND, True, T0)
    assert tracker.set_maintenance(BACKEND, True, T0 + INTERVAL) == "maintenance"
    assert registry.calls == [(BACKEND, "maintenance", None)]  # no rounds yet: uptime unknown


def test_initial_maintenance_holds_until_left():
    tracker, registry = make_tracker(initial_status={BACKEND: "maintenance"})
    assert play(tracker, ["ok", "ok", "ok"]) == ["maintenance"] * 3
    assert tracker.set_maintenance(BACKEND, False, T0 + 3 * INTERVAL) == "unknown"
    assert registry.calls == [(BACKEND, "unknown", 100.0)]


# --------------------------------------------------------------------------
# Incidents


def test_incident_opens_escalates_and_resolves():
    tracker, _ = make_tracker()
    opened = Incident(
        started_at=T0 + 2 * INTERVAL,
        severity="warning",
        description=f"`{BACKEND}` degraded: latency 150ms > 100ms",
    )
    play(tracker, ["ok", "ok", "slow", "errors"])
    assert tracker.incidents(BACKEND) == [opened]
    play(tracker, ["down", "down", "down"], start=T0 + 4 * INTERVAL)
    escalated = msgspec.structs.replace(opened, severity="critical")
    assert tracker.incidents(BACKEND) == [escalated]
    play(tracker, ["ok", "ok"], start=T0 + 7 * INTERVAL)
    assert tracker.incidents(BACKEND) == [msgspec.structs.replace(escalated, resolved_at=T0 + 8 * INTERVAL)]


@pytest.mark.parametrize(
    ("kinds", "expected"),
    [
        pytest.param(
            ["ok", "ok", "errors"],
            Incident(
                started_at=T0 + 2 * INTERVAL,
                severity="warning",
                description=f"`{BACKEND}` degraded: error_rate 2.5% > 1%",
            ),
            id="degraded-opens-a-warning",
        ),
        pytest.param(
            ["ok", "ok", "down", "down", "down"],
            Incident(
                started_at=T0 + 4 * INTERVAL,
                severity="critical",
                description=f"`{BACKEND}` unhealthy: 3 consecutive failed rounds",
            ),
            id="unhealthy-opens-a-critical",
        ),
        pytest.param(
            ["down", "down", "down"],
            Incident(
                started_at=T0 + 2 * INTERVAL,
                severity="critical",
                description=f"`{BACKEND}` unhealthy: 3 consecutive failed rounds",
            ),
            id="unhealthy-from-unknown-opens-too",
        ),
        pytest.param(
            ["down", "down", "down", "slow"],
            Incident(
                started_at=T0 + 2 * INTERVAL,
                severity="critical",
                description=f"`{BACKEND}` unhealthy: 3 consecutive failed rounds",
            ),
            id="severity-does-not-drop-on-partial-recovery",
        ),
    ],
)
def test_open_incident_after_rounds(kinds, expected):
    tracker, _ = make_tracker()
    play(tracker, kinds)
    assert tracker.incidents(BACKEND) == [expected]
    assert tracker.incidents(BACKEND)[0].is_open


def test_degraded_with_both_breaches_names_both():
    tracker, _ = make_tracker()
    results = [
        CheckResult(name="connectivity", ok=True, at=T0),
        CheckResult(name="latency", value=0.25, at=T0),
        CheckResult(name="error_rate", value=3, at=T0),
    ]
    tracker.record(BACKEND, results, T0)
    assert (
        tracker.incidents(BACKEND)[0].description
        == f"`{BACKEND}` degraded: latency 250ms > 100ms, error_rate 3% > 1%"
    )


def test_each_outage_gets_its_own_incident():
    tracker, _ = make_tracker()
    play(tracker, ["slow", "ok", "ok", "slow", "ok", "ok"])
    incidents = tracker.incidents(BACKEND)
    assert [(i.started_at, i.resolved_at, i.severity) for i in incidents] == [
        (T0, T0 + 2 * INTERVAL, "warning"),
        (T0 + 3 * INTERVAL, T0 + 5 * INTERVAL, "warning"),
    ]


def test_incident_open_through_maintenance_resolves_when_healthy():
    tracker, _ = make_tracker()
    play(tracker, ["slow"])
    tracker.set_maintenance(BACKEND, True, T0 + INTERVAL)
    tracker.set_maintenance(BACKEND, False, T0 + 2 * INTERVAL)
    assert tracker.incidents(BACKEND)[0].is_open
    play(tracker, ["ok", "ok"], start=T0 + 3 * INTERVAL)
    assert tracker.incidents(BACKEND)[0].resolved_at == T0 + 4 * INTERVAL


def test_manual_incidents_are_ordered_and_resolved_by_hand():
    tracker, _ = make_tracker()
    play(tracker, ["slow"])
    earlier = T0 - timedelta(hours=1)
    manual = tracker.open_incident(
        BACKEND,
        severity="info",
        at=earlier,
        description="Elevated latency in partition 12",
        impact="P99 150ms",
    )
    assert [i.started_at for i in tracker.incidents(BACKEND)] == [earlier, T0]

    play(tracker, ["ok", "ok"], start=T0 + INTERVAL)
    assert tracker.incidents(BACKEND)[0].is_open  # recovery resolves only the tracker's own

    resolved = tracker.resolve_incident(
        BACKEND, manual, at=T0 + timedelta(minutes=23), root_cause="Network congestion in AZ-1a"
    )
    assert resolved == Incident(
        started_at=earlier,
        resolved_at=T0 + timedelta(minutes=23),
        severity="info",
        description="Elevated latency in partition 12",
        impact="P99 150ms",
        root_cause="Network congestion in AZ-1a",
    )
    assert tracker.incidents(BACKEND)[0] == resolved
    with pytest.raises(ValueError, match=r"already resolved"):
        tracker.resolve_incident(BACKEND, resolved, at=T0 + timedelta(hours=1))


def test_resolving_the_automatic_incident_by_hand_lets_a_new_one_open():
    tracker, _ = make_tracker()
    play(tracker, ["slow"])
    tracker.resolve_incident(
        BACKEND, tracker.incidents(BACKEND)[0], at=T0, remediation="Traffic shifted to AZ-1b"
    )
    play(tracker, ["down", "down", "down"], start=T0 + INTERVAL)
    assert [(i.severity, i.is_open, i.remediation) for i in tracker.incidents(BACKEND)] == [
        ("warning", False, "Traffic shifted to AZ-1b"),
        ("critical", True, None),
    ]


def test_resolving_an_unknown_incident_is_an_error():
    tracker, _ = make_tracker()
    stranger = Incident(started_at=T0, severity="info")
    with pytest.raises(ValueError, match=re.escape(f"no such incident for `{BACKEND}`")):
        tracker.resolve_incident(BACKEND, stranger, at=T0)


def test_seed_incident_document_is_an_incident():
    incident = msgspec.convert(yaml.safe_load(SEED_INCIDENT_YAML)["incident"], Incident)
    assert incident.severity == "warning"
    assert incident.resolved_at - incident.started_at == timedelta(minutes=23)
    assert not incident.is_open


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"started_at": T0, "severity": "fatal"},
            "Expected `severity` one of info|warning|critical, got `fatal`",
        ),
        (
            {"started_at": T0, "severity": "info", "resolved_at": T0 - INTERVAL},
            "Expected `resolved_at` >= `started_at` (2025-11-16T10:00:00+00:00)",
        ),
    ],
)
def test_invalid_incidents_are_rejected(fields, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        Incident(**fields)


# --------------------------------------------------------------------------
# Uptime


def test_uptime_counts_degraded_as_up_and_failed_as_down():
    tracker, _ = make_tracker()
    assert tracker.uptime_percent_24h(BACKEND) is None
    play(tracker, ["ok", "slow", "down", "errors"])
    assert tracker.uptime_percent_24h(BACKEND) == 75.0


def test_uptime_window_rolls_over_24_hours():
    tracker, _ = make_tracker()
    tracker.record(BACKEND, round_of("down", T0), T0)
    tracker.record(BACKEND, round_of("ok", T0 + timedelta(hours=12)), T0 + timedelta(hours=12))
    assert tracker.uptime_percent_24h(BACKEND) == 50.0
    # The window is (at - 24h, at]: a round exactly 24 h old has left it.
    assert tracker.uptime_percent_24h(BACKEND, at=T0 + timedelta(hours=24)) == 100.0
    assert tracker.uptime_percent_24h(BACKEND, at=T0 + timedelta(hours=24) - timedelta(seconds=1)) == 50.0
    assert tracker.uptime_percent_24h(BACKEND, at=T0 + timedelta(hours=37)) is None
    later = T0 + timedelta(hours=30)
    tracker.record(BACKEND, round_of("ok", later), later)
    assert tracker.uptime_percent_24h(BACKEND) == 100.0


def test_uptime_cannot_be_asked_before_the_last_round():
    tracker, _ = make_tracker()
    play(tracker, ["ok", "ok"])
    with pytest.raises(ValueError, match=re.escape("Expected times for `postgres-primary` in order")):
        tracker.uptime_percent_24h(BACKEND, at=T0)


# --------------------------------------------------------------------------
# Times, clocks and bad calls


def test_clock_supplies_omitted_times():
    now = [T0]
    tracker, registry = make_tracker(clock=lambda: now[0])
    tracker.record(BACKEND, round_of("slow", T0))
    now[0] = T0 + INTERVAL
    tracker.set_maintenance(BACKEND, True)
    assert tracker.incidents(BACKEND)[0].started_at == T0
    assert registry.calls == [(BACKEND, "degraded", 100.0), (BACKEND, "maintenance", 100.0)]


def test_without_clock_times_are_required():
    tracker, _ = make_tracker()
    with pytest.raises(ValueError, match=re.escape("Expected `at`: this tracker has no clock")):
        tracker.record(BACKEND, round_of("ok", T0))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        pytest.param(
            lambda tracker: tracker.record("mysql-legacy", round_of("ok", T0), T0),
            "unknown backend `mysql-legacy`",
            id="unknown-backend-record",
        ),
        pytest.param(
            lambda tracker: tracker.status("mysql-legacy"),
            "unknown backend `mysql-legacy`",
            id="unknown-backend-status",
        ),
        pytest.param(
            lambda tracker: tracker.record(BACKEND, [CheckResult(name="conectivity", ok=True, at=T0)], T0),
            "check `conectivity` is not configured (configured: `connectivity`, `latency`, `error_rate`)",
            id="misspelled-check",
        ),
        pytest.param(
            lambda tracker: tracker.record(BACKEND, round_of("ok", T0) * 2, T0),
            "check `connectivity` reported twice in one round",
            id="duplicate-check",
        ),
        pytest.param(
            lambda tracker: tracker.record(BACKEND, round_of("ok", T0), datetime(2025, 11, 16, 10)),
            "Expected a timezone-aware datetime for `at`, got `2025-11-16T10:00:00` (no timezone)",
            id="naive-round-time",
        ),
    ],
)
def test_bad_calls_raise_value_error(call, message):
    tracker, registry = make_tracker()
    with pytest.raises(ValueError, match=re.escape(message)):
        call(tracker)
    assert registry.calls == []


def test_bad_round_leaves_state_untouched():
    tracker, _ = make_tracker()
    tracker.record(BACKEND, round_of("ok", T0), T0)
    with pytest.raises(ValueError, match="reported twice"):
        tracker.record(BACKEND, round_of("ok", T0) * 2, T0 + INTERVAL)
    assert tracker.uptime_percent_24h(BACKEND) == 100.0
    assert tracker.record(BACKEND, round_of("ok", T0 + INTERVAL), T0 + INTERVAL) == "healthy"


def test_rounds_must_not_go_back_in_time():
    tracker, _ = make_tracker()
    tracker.record(BACKEND, round_of("ok", T0), T0)
    with pytest.raises(
        ValueError,
        match=re.escape(
            "Expected times for `postgres-primary` in order: got 2025-11-16T09:59:30+00:00,"
            " before the last one, 2025-11-16T10:00:00+00:00"
        ),
    ):
        tracker.record(BACKEND, round_of("ok", T0 - INTERVAL), T0 - INTERVAL)


def test_registry_without_backend_ids_accepts_any_backend():
    registry = RegistryWithoutIds()
    tracker = HealthTracker(registry, SEED_CONFIG)
    tracker.record("anything", round_of("slow", T0), T0)
    assert registry.calls == [("anything", "degraded", 100.0)]


@pytest.mark.parametrize(
    ("initial_status", "message"),
    [
        ({"mysql-legacy": "healthy"}, "unknown backend `mysql-legacy`"),
        (
            {BACKEND: "ok"},
            "Expected a status in healthy|degraded|unhealthy|maintenance|unknown for `postgres-primary`, got `ok`",
        ),
    ],
)
def test_bad_initial_status(initial_status, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        HealthTracker(FakeRegistry(), SEED_CONFIG, initial_status=initial_status)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"name": "latency", "value": 0.1, "at": datetime(2025, 11, 16)},
            "Expected a timezone-aware datetime for `at`",
        ),
        (
            {"name": "latency", "value": float("nan"), "at": T0},
            "Expected a finite `value` for check `latency`, got `nan`",
        ),
    ],
)
def test_invalid_check_results_are_rejected(fields, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        CheckResult(**fields)


# --------------------------------------------------------------------------
# Configuration


def test_seed_health_check_config():
    assert SEED_CONFIG == HealthCheckConfig(
        endpoint="/health",
        interval=30.0,
        timeout=5.0,
        healthy_threshold=2,
        unhealthy_threshold=3,
        checks=(
            CheckSpec(name="connectivity", weight=1.0, command="ping backend"),
            CheckSpec(name="latency", weight=0.8, threshold=0.1, command="measure p99 latency"),
            CheckSpec(name="error_rate", weight=1.0, threshold=1.0, command="check error rate"),
        ),
    )


def test_block_and_wrapped_block_read_the_same():
    document = yaml.safe_load(SEED_HEALTH_CHECK_YAML)
    assert read_health_check(document["health_check"]) == SEED_CONFIG


def test_tracker_accepts_a_mapping_config():
    tracker = HealthTracker(FakeRegistry(), yaml.safe_load(SEED_HEALTH_CHECK_YAML))
    assert tracker.config == SEED_CONFIG


def test_defaults_are_one_connectivity_check():
    config = read_health_check({})
    assert config == HealthCheckConfig(
        endpoint=None,
        interval=30.0,
        timeout=5.0,
        healthy_threshold=2,
        unhealthy_threshold=3,
        checks=(CheckSpec(name="connectivity", weight=1.0, threshold=None, command=None),),
    )


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("100ms", 0.1),
        ("1m30s", 90.0),
        ("1.5h", 5400.0),
        ("2h45m", 9900.0),
        ("250us", 0.00025),
        ("10ns", 1e-8),
        (".5s", 0.5),
        ("0s", 0.0),
    ],
)
def test_durations(text, seconds):
    config = read_health_check(
        {"interval": "1h", "checks": [{"name": "latency", "threshold": text}]}
    )
    assert config.checks[0].threshold == pytest.approx(seconds, rel=1e-12)


@pytest.mark.parametrize(
    ("threshold", "percent"), [("1%", 1.0), ("0.5%", 0.5), (2, 2.0), (0.25, 0.25), ("100%", 100.0)]
)
def test_error_rate_thresholds_are_percent(threshold, percent):
    config = read_health_check({"checks": [{"name": "error_rate", "threshold": threshold}]})
    assert config.checks[0].threshold == percent


DURATION = "Expected a duration such as `30s`, `100ms` or `1m30s` (units ns us ms s m h)"
THRESHOLD = "Expected a threshold: a number, a duration such as `100ms` or a percentage such as `1%`"


@pytest.mark.parametrize(
    ("mapping", "path", "message"),
    [
        pytest.param(
            {"interval": 30},
            "$.interval",
            "Expected a duration with a unit such as `30s` or `100ms`, got the bare number `30`",
            id="bare-number",
        ),
        pytest.param(
            {"health_check": {"timeout": "5 s"}}, "$.health_check.timeout", f'{DURATION}, got `"5 s"`',
            id="space-in-duration",
        ),
        pytest.param({"timeout": "5S"}, "$.timeout", f'{DURATION}, got `"5S"`', id="unit-case"),
        pytest.param({"timeout": "-5s"}, "$.timeout", f'{DURATION}, got `"-5s"`', id="negative-duration"),
        pytest.param(
            {"timeout": True}, "$.timeout", "Expected a duration such as `30s` or `100ms`, got `true`",
            id="boolean-duration",
        ),
        pytest.param(
            {"timeout": "9" * 400 + "h"},
            "$.timeout",
            'Expected a finite duration, got `"9999999999999999999999999999999999999..."`',
            id="overflow",
        ),
        pytest.param({"interval": "0s"}, "$.interval", "Expected a duration > 0, got `0s`", id="zero-interval"),
        pytest.param(
            {"checks": [{"name": "connectivity"}, {"name": "latency", "threshold": 100}]},
            "$.checks[1].threshold",
            "Expected a duration such as `100ms` for a `latency` threshold, got the bare number `100`",
            id="latency-threshold-bare-number",
        ),
        pytest.param(
            {"checks": [{"name": "latency", "threshold": "5%"}]},
            "$.checks[0].threshold",
            "Expected a duration such as `100ms` for a `latency` threshold, got the percentage `5%`",
            id="latency-threshold-percent",
        ),
        pytest.param(
            {"checks": [{"name": "error_rate", "threshold": "5s"}]},
            "$.checks[0].threshold",
            "Expected a percentage such as `1%` for an `error_rate` threshold, got the duration `5s`",
            id="error-rate-threshold-duration",
        ),
        pytest.param(
            {"health_check": {"checks": [{"name": "error_rate", "threshold": "1"}]}},
            "$.health_check.checks[0].threshold",
            f'{THRESHOLD}, got `"1"`',
            id="percent-without-sign",
        ),
        pytest.param(
            {"checks": [{"name": "error_rate", "threshold": "150%"}]},
            "$.checks[0].threshold",
            'Expected a percentage in [0, 100] such as `1%`, got `"150%"`',
            id="percent-above-100",
        ),
        pytest.param(
            {"checks": [{"name": "error_rate", "threshold": 150}]},
            "$.checks[0].threshold",
            "Expected a percentage in [0, 100] for an `error_rate` threshold, got `150`",
            id="bare-percent-above-100",
        ),
        pytest.param(
            {"checks": [{"name": "error_rate", "threshold": float("nan")}]},
            "$.checks[0].threshold",
            "Expected a finite threshold >= 0, got `nan`",
            id="percent-nan",
        ),
        pytest.param(
            {"checks": [{"name": "replica_lag", "threshold": "5"}]},
            "$.checks[0].threshold",
            f'{THRESHOLD}, got `"5"`',
            id="other-threshold-text-without-unit",
        ),
        pytest.param(
            {"checks": [{"name": "replica_lag", "threshold": -1}]},
            "$.checks[0].threshold",
            "Expected a finite threshold >= 0, got `-1`",
            id="negative-threshold",
        ),
        pytest.param(
            {"healthy_threshold": 0},
            "$.healthy_threshold",
            "Expected a whole number >= 1 that fits in 64 bits, got `0`",
            id="zero-rounds",
        ),
        pytest.param(
            {"health_check": {"unhealthy_threshold": 2.5}},
            "$.health_check.unhealthy_threshold",
            "Expected a whole number >= 1 that fits in 64 bits, got `2.5`",
            id="fractional-rounds",
        ),
        pytest.param(
            {"intervall": "30s"}, "$", "Unknown field `intervall`; did you mean `interval`?", id="typo"
        ),
        pytest.param(
            {"health_check": {"checks": [{"name": "latency", "treshold": "1s"}]}},
            "$.health_check.checks[0]",
            "Unknown field `treshold`; did you mean `threshold`?",
            id="typo-in-check",
        ),
        pytest.param(
            {"checks": []}, "$.checks", "Expected `array` of length >= 1, got `array`", id="no-checks"
        ),
        pytest.param({"checks": [{"weight": 1}]}, "$.checks[0]", "Missing required field `name`", id="nameless"),
        pytest.param(
            {"checks": [{"name": "latency"}, {"name": "latency"}]},
            "$.checks[1].name",
            "Expected unique check names, got `latency` twice",
            id="duplicate-names",
        ),
        pytest.param(
            {"health_check": {"checks": [{"name": "connectivity", "weight": 0}]}},
            "$.health_check.checks",
            "Expected checks with a total `weight` > 0, got 0",
            id="weightless",
        ),
        pytest.param(
            {"checks": [{"name": "connectivity", "weight": -1}]},
            "$.checks[0].weight",
            "Expected a finite number >= 0, got `-1`",
            id="negative-weight",
        ),
        pytest.param(
            {"checks": [{"name": "connectivity", "weight": float("inf")}]},
            "$.checks[0].weight",
            "Expected a finite number, got `inf`",
            id="infinite-weight",
        ),
        pytest.param(
            {"checks": [{"name": "x", "command": []}]},
            "$.checks[0].command",
            "Expected `array` of length >= 1, got `array`",
            id="empty-command",
        ),
        pytest.param(
            {"endpoint": "ftp://host/x"},
            "$.endpoint",
            "Expected `endpoint` to be an HTTP URL (`http://host:port/health`), a path on the connection"
            ' endpoint (`/health`) or `tcp://host:port`, got `"ftp://host/x"`',
            id="endpoint-scheme",
        ),
        pytest.param({"checks": {"name": "latency"}}, "$.checks", "Expected `array`, got `object`", id="checks-not-a-list"),
        pytest.param(
            {"health_check": ["30s"]}, "$.health_check", "Expected `object`, got `array`", id="block-not-a-mapping"
        ),
        pytest.param(["30s"], "$", "Expected `object`, got `array`", id="document-not-a-mapping"),
    ],
)
def test_bad_config_is_rejected_with_its_path(mapping, path, message):
    with pytest.raises(RegistryError) as caught:
        read_health_check(mapping)
    assert caught.value.errors == [(f"health_check {path}", message)]
