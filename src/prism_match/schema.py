"""msgspec Structs for every document prism_match reads.

Documents (YAML/JSON/dicts) → these frozen, keyword-only Structs, validated in
one pass by ``msgspec.convert`` (or decoded straight from JSON). Numbers carry
their bounds as msgspec constraints (finite, >= 0, percentages in [0, 100]);
fields whose text needs a parser (sizes, durations) are typed with marker
float classes that :func:`decode_hook` fills, so a validated registration
holds numbers only, and every problem comes out with its JSON path. The seed's layout ambiguities (G1–G4 in ``shared/seed/README.md``) are
accepted both ways: ``tls``/``pool``/``timeouts``/``retry`` under
``connection`` or at the top level, batch fields inside a capability's
``performance`` or beside it, ``transactional`` on an interface or an
operation, ``transfer_costs``/``recent_incidents`` nested or at the top level.
"""

from __future__ import annotations

import datetime as _dt
import math
from typing import Annotated, Any, Literal, Union, get_args

import msgspec

from ._names import NameCheck, first_control_char
from .redact import printable, quoted, redacted, redacted_url
from .units import parse_duration, parse_duration_ms, parse_size

__all__ = [
    "BACKEND_TYPES", "HEALTH_STATUSES", "CONSISTENCY_LEVELS", "COST_MODELS", "AUTH_TYPES", "SEVERITIES",
    "Registration", "SlotRequirement", "Query", "Pattern", "decode_hook", "encode_hook", "ENUM_CHOICES",
    "HealthCheckConfig", "CheckSpec", "Incident",
]

BackendType = Literal["kafka", "nats", "postgres", "redis", "sqlite", "neptune", "sqs", "s3", "memstore"]
HealthStatus = Literal["healthy", "degraded", "unhealthy", "maintenance", "unknown"]
Consistency = Literal["strong", "bounded_staleness", "session", "eventual"]  # strongest first
CostModel = Literal["pay_per_use", "provisioned", "reserved", "spot"]
Severity = Literal["info", "warning", "critical"]

# The same values as tuples, in declared order (codes and messages use it).
BACKEND_TYPES: tuple[str, ...] = get_args(BackendType)
HEALTH_STATUSES: tuple[str, ...] = get_args(HealthStatus)
CONSISTENCY_LEVELS: tuple[str, ...] = get_args(Consistency)
COST_MODELS: tuple[str, ...] = get_args(CostModel)
SEVERITIES: tuple[str, ...] = get_args(Severity)
AUTH_TYPES = ("mtls", "username_password", "token", "iam")  # the tags of the Auth Structs below

# msgspec reports a bad Literal as "Invalid enum value"; the loader adds the
# valid choices, looked up by the field's name.
ENUM_CHOICES: dict[str, tuple[str, ...]] = {
    "backend_type": BACKEND_TYPES, "backend_types": BACKEND_TYPES,
    "status": HEALTH_STATUSES, "health_statuses": HEALTH_STATUSES,
    "consistency": CONSISTENCY_LEVELS, "cost_model": COST_MODELS,
    "severity": SEVERITIES, "type": AUTH_TYPES,
}


# --- number types ------------------------------------------------------------------
#
# Plain numbers are checked by msgspec itself (C speed, no hook): the upper
# bound ``MAX_FLOAT`` is what rejects infinities, and NaN fails every bound.
# Python ints too large for a float fail as "Number out of range".

MAX_FLOAT = 1.7976931348623157e308
MAX_COUNT = 2**63 - 1

NonNegative = Annotated[float, msgspec.Meta(ge=0.0, le=MAX_FLOAT)]  # rates, costs, milliseconds
Percent = Annotated[float, msgspec.Meta(ge=0.0, le=100.0)]
Multiplier = Annotated[float, msgspec.Meta(ge=1.0, le=MAX_FLOAT)]   # a backoff multiplier
Count = Annotated[int, msgspec.Meta(ge=0, le=MAX_COUNT)]             # a whole number that fits in 64 bits


# --- marker types: float subclasses that decode_hook parses ------------------------
#
# Sizes and durations arrive as text (``10TB``, ``300s``) and need a parser;
# msgspec hands these fields to ``decode_hook``. The parsed values repeat a
# lot across a registry (``100GB``, ``30s``), so text → number is memoised.

class Size(float):
    """Bytes, or a string with a unit (``2.5TB``, ``512MiB``)."""


class Duration(float):
    """Seconds, from a string with units (``100ms``, ``1m30s``)."""


class DurationMs(float):
    """Milliseconds, from a string with units (a latency bound)."""


_PARSERS = {Size: parse_size, Duration: parse_duration, DurationMs: parse_duration_ms}
_MEMO: dict[tuple[type, str], float] = {}
_MEMO_LIMIT = 4096


def decode_hook(kind: type, value: object) -> object:
    """Parse Size/Duration/DurationMs fields; raise ValueError in the error grammar."""
    if type(value) is str:
        key = (kind, value)
        parsed = _MEMO.get(key)
        if parsed is None:
            parser = _PARSERS.get(kind)
            if parser is None:
                raise NotImplementedError(kind)
            parsed = parser(value) if kind is Threshold else kind(parser(value))
            if len(_MEMO) >= _MEMO_LIMIT:
                _MEMO.clear()
            _MEMO[key] = parsed
        return parsed
    parser = _PARSERS.get(kind)
    if parser is None:
        raise NotImplementedError(kind)
    return parser(value) if kind is Threshold else kind(parser(value))


def encode_hook(value: object) -> object:
    """The inverse of :func:`decode_hook` for encoding a registration:
    durations keep their unit (a bare number is not a duration), sizes are
    bytes. ``msgspec.json.encode(reg, enc_hook=encode_hook)`` loads back to
    an equal registration."""
    if type(value) is Size:  # first: a registration's storage amounts, the most frequent
        return float(value)
    if isinstance(value, DurationMs):
        return f"{float(value)!r}ms"
    if isinstance(value, (Duration, ThresholdSeconds)):
        return f"{float(value)!r}s"
    if isinstance(value, ThresholdPercent):
        return f"{float(value)!r}%"
    if isinstance(value, float):
        return float(value)
    raise NotImplementedError(type(value))


# Names are free text but for control characters (vocabulary.VERSION_SEP is
# one, and a terminal escape has no place in a name). ``\Z``, not ``$``: the
# latter also matches before a final newline.
Name = Annotated[str, msgspec.Meta(min_length=1, pattern=r"^[^\x00-\x1f]+\Z")]
# The names of a registration (its id, capabilities, interfaces, regions and
# compliance tags): the same rule, checked by the Registration in one pass
# (``_names_checked``), the regular expression kept for the JSON Schema only.
# A regular expression per string cost 0.4-0.9 µs, most of a registration's
# validation (``Registry.add``, the loader).
RegistrationName = Annotated[str, msgspec.Meta(min_length=1, extra_json_schema={"pattern": r"^[^\x00-\x1f]+\Z"})]
# The names of slots and queries, read on every match of a new slot: the
# Struct checks them all in one pass (``_names_checked``) rather than one
# regular expression per string, which cost 0.35 µs each.
SlotName = Annotated[str, msgspec.Meta(min_length=1)]
NAME_MESSAGE = "Expected a name without control characters"
DEFAULT_VERSION = "v1"  # of a capability or interface declared by name alone


def _name_error(path: str, value: str) -> None:
    # The inner path rides in the message; the loader joins it to where
    # msgspec says the Struct is (field_errors.validate_item).
    raise ValueError(f'{NAME_MESSAGE}, got `"{printable(value, 40)}"` - at `{path}`')


def _names_checked(*fields: str) -> NameCheck:
    """``__post_init__`` for a Struct whose ``fields`` hold names."""
    return NameCheck(fields, _name_error)


class Base(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True, gc=False):
    """Shared config: immutable, unknown fields rejected, not tracked by the
    cyclic GC (a registry is hundreds of thousands of acyclic Structs; each
    collection would scan them all). msgspec applies ``kw_only`` only to the
    fields of the class that says it, so every subclass repeats it."""

    def __repr__(self) -> str:  # secrets never reach a repr
        fields = ", ".join(f"{k}={redacted(k, v)!r}" for k, v in msgspec.structs.asdict(self).items()
                           if v is not None and v != [] and v != {})
        return f"{type(self).__name__}({fields})"


# --- connection ---------------------------------------------------------------

class MtlsAuth(Base, tag="mtls", tag_field="type", kw_only=True):
    certificate_path: str | None = None
    key_path: str | None = None
    ca_cert_path: str | None = None


class UsernamePasswordAuth(Base, tag="username_password", tag_field="type", kw_only=True):
    username: str | None = None
    password: str | None = None


class TokenAuth(Base, tag="token", tag_field="type", kw_only=True):
    token: str | None = None


class IamAuth(Base, tag="iam", tag_field="type", kw_only=True):
    role_arn: str | None = None
    region: str | None = None


Auth = Union[MtlsAuth, UsernamePasswordAuth, TokenAuth, IamAuth]


class Tls(Base, kw_only=True):
    enabled: bool = False
    verify_server: bool = True
    server_name: str | None = None


class Pool(Base, kw_only=True):
    min_connections: Count = 0
    max_connections: Count | None = None
    max_idle_time: Duration | None = None
    max_lifetime: Duration | None = None


class Timeouts(Base, kw_only=True):
    connect_timeout: Duration | None = None
    read_timeout: Duration | None = None
    write_timeout: Duration | None = None
    idle_timeout: Duration | None = None


class Retry(Base, kw_only=True):
    max_attempts: Count | None = None
    initial_backoff: Duration | None = None
    max_backoff: Duration | None = None
    backoff_multiplier: Multiplier | None = None
    retryable_errors: list[str] = []


class Connection(Base, kw_only=True):
    endpoint: str | None = None
    auth: Auth | None = None
    tls: Tls | None = None
    pool: Pool | None = None
    timeouts: Timeouts | None = None
    retry: Retry | None = None


# --- capabilities and interfaces ------------------------------------------------

class Latency(Base, kw_only=True):
    p50_ms: NonNegative | None = None
    p95_ms: NonNegative | None = None
    p99_ms: NonNegative | None = None
    p999_ms: NonNegative | None = None


class CapabilityPerformance(Base, kw_only=True):
    max_write_rps: NonNegative | None = None
    max_read_rps: NonNegative | None = None
    latency: Latency | None = None
    supports_batch: bool | None = None
    max_batch_size: Count | None = None
    max_concurrent_operations: Count | None = None


class Capability(Base, kw_only=True):
    name: RegistrationName  # checked by the Registration that holds it
    version: RegistrationName = DEFAULT_VERSION
    description: str | None = None
    performance: CapabilityPerformance | None = None
    limitations: list[str] = []
    # G2: the batch fields may also sit beside `performance`.
    supports_batch: bool | None = None
    max_batch_size: Count | None = None
    max_concurrent_operations: Count | None = None

    @property
    def p99_ms(self) -> float | None:
        perf = self.performance
        return perf.latency.p99_ms if perf is not None and perf.latency is not None else None

    def performance_entry(self) -> tuple[float | None, ...] | None:
        """What the per-capability rules read, or None when the capability
        states none of it: ``(p99, p50, p95, p999, max_write_rps,
        max_read_rps, supports_batch, max_batch_size,
        max_concurrent_operations)``, None where unstated. A batch field
        inside ``performance`` wins over the same field beside it (G2)."""
        perf = self.performance
        lat = perf.latency if perf is not None else None

        def batch(name: str):
            inner = getattr(perf, name) if perf is not None else None
            return inner if inner is not None else getattr(self, name)

        entry = (lat.p99_ms if lat is not None else None, lat.p50_ms if lat is not None else None,
                 lat.p95_ms if lat is not None else None, lat.p999_ms if lat is not None else None,
                 perf.max_write_rps if perf is not None else None, perf.max_read_rps if perf is not None else None,
                 batch("supports_batch"), batch("max_batch_size"), batch("max_concurrent_operations"))
        return entry if any(value is not None for value in entry) else None


class Operation(Base, kw_only=True):
    name: Name
    idempotent: bool | None = None
    transactional: bool | None = None  # G3
    parameters: dict[str, Any] | None = None
    returns: str | None = None


class Interface(Base, kw_only=True):
    name: RegistrationName  # checked by the Registration that holds it
    version: RegistrationName = DEFAULT_VERSION
    proto_service: str | None = None
    operations: list[Operation] = []
    transactional: bool | None = None  # G3


# --- capacity, usage, cost, health -------------------------------------------------

class Capacity(Base, kw_only=True):
    max_write_rps: NonNegative | None = None
    max_read_rps: NonNegative | None = None
    max_storage: Size | None = None
    max_connections: NonNegative | None = None
    max_namespaces: NonNegative | None = None


class Current(Base, kw_only=True):
    write_rps: NonNegative | None = None
    read_rps: NonNegative | None = None
    storage_used: Size | None = None
    active_connections: NonNegative | None = None
    namespace_count: NonNegative | None = None


class TransferCosts(Base, kw_only=True):
    cost_per_gb_intra_region: NonNegative | None = None
    cost_per_gb_inter_region: NonNegative | None = None
    cost_per_gb_internet: NonNegative | None = None


class Cost(Base, kw_only=True):
    cost_model: CostModel | None = None
    cost_per_1k_writes: NonNegative | None = None
    cost_per_1k_reads: NonNegative | None = None
    cost_per_gb_month: NonNegative | None = None
    cost_per_connection_hour: NonNegative | None = None
    transfer_costs: TransferCosts | None = None  # G4


class Incident(Base, kw_only=True):
    """The seed's incident record (also what a HealthTracker opens); `resolved_at` is None while it is open."""

    started_at: _dt.datetime
    resolved_at: _dt.datetime | None = None
    severity: Severity = "warning"
    description: str | None = None
    impact: str | None = None
    root_cause: str | None = None
    remediation: str | None = None

    def __post_init__(self) -> None:
        # msgspec checks the Literal when decoding; a direct construction is checked here.
        if self.severity not in SEVERITIES:
            raise ValueError(f"Expected `severity` one of info|warning|critical, got `{printable(self.severity, 40)}`"
                             " - at `$.severity`")
        resolved = self.resolved_at
        if resolved is not None and (resolved.utcoffset() is None) == (self.started_at.utcoffset() is None) \
                and resolved < self.started_at:
            raise ValueError(f"Expected `resolved_at` >= `started_at` ({self.started_at.isoformat()}), "
                             f"got `{resolved.isoformat()}` - at `$.resolved_at`")

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None


class Health(Base, kw_only=True):
    status: HealthStatus = "unknown"
    last_check_at: _dt.datetime | None = None
    uptime_percent_24h: Percent | None = None
    recent_incidents: list[Incident] = []  # G4


# --- health checks (the seed's "Health Checks") ------------------------------------------
#
# A registration may carry the block that says how to probe it; health.py
# runs the state machine and probes.py the probes. A check's threshold is
# read in the unit its name implies, so the hook keeps what was written
# (duration, percentage or bare number) as a marker type and the check's
# ``__post_init__`` decides whether it fits.

class Threshold(float):
    """A check threshold written as a bare number (its subclasses mark the
    other spellings)."""


class ThresholdSeconds(Threshold):
    """A threshold written as a duration (``100ms``), in seconds."""


class ThresholdPercent(Threshold):
    """A threshold written as a percentage (``1%``), in percent."""


_THRESHOLD_HELP = "Expected a threshold: a number, a duration such as `100ms` or a percentage such as `1%`"


def parse_threshold(value: object) -> Threshold:
    """``100ms`` → ThresholdSeconds(0.1), ``1%`` → ThresholdPercent(1.0), ``5`` → Threshold(5.0)."""
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("%"):
            try:
                percent = float(text[:-1])
            except ValueError:
                percent = math.nan
            if not 0.0 <= percent <= 100.0:
                raise ValueError(f"Expected a percentage in [0, 100] such as `1%`, got `{quoted(value)}`")
            return ThresholdPercent(percent)
        try:
            return ThresholdSeconds(parse_duration(value))
        except ValueError:
            raise ValueError(f"{_THRESHOLD_HELP}, got `{quoted(value)}`") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{_THRESHOLD_HELP}, got `{type(value).__name__}`")
    number = float(value)
    if not 0.0 <= number <= MAX_FLOAT:
        raise ValueError(f"Expected a finite threshold >= 0, got `{value!r}`")
    return Threshold(number)


CheckName = Annotated[str, msgspec.Meta(min_length=1, pattern=r"^[^\x00-\x1f]+\Z")]
Rounds = Annotated[int, msgspec.Meta(ge=1, le=MAX_COUNT)]
Command = Union[Annotated[str, msgspec.Meta(min_length=1)], Annotated[list[str], msgspec.Meta(min_length=1)]]


class CheckSpec(Base, kw_only=True):
    """One check of a round (the seed's ``checks:`` items).

    ``threshold`` is in the check's own unit: seconds for ``latency`` (written
    as a duration), percent for ``error_rate`` (``1%`` or a number), the
    reported number for any other check. A passing check whose value is
    above it makes the round degraded. ``command`` (a string split as a
    shell would, or an argv list; never run through a shell) is what the
    checker runs for this check; without one, ``connectivity`` and
    ``latency`` read the backend's endpoint probe.
    """

    name: CheckName
    weight: NonNegative = 1.0
    threshold: Threshold | None = None
    command: Command | None = None

    def __post_init__(self) -> None:
        threshold = self.threshold
        if threshold is None:
            return
        kind = type(threshold)
        if self.name == "latency" and kind is not ThresholdSeconds and kind is not float and kind is not int:
            raise ValueError("Expected a duration such as `100ms` for a `latency` threshold, got "
                             f"{'the bare number' if kind is Threshold else 'the percentage'} "
                             f"`{_threshold_text(threshold)}` - at `$.threshold`")
        if self.name == "error_rate":
            if kind is ThresholdSeconds:
                raise ValueError("Expected a percentage such as `1%` for an `error_rate` threshold, got the "
                                 f"duration `{float(threshold):g}s` - at `$.threshold`")
            if not 0.0 <= threshold <= 100.0:
                raise ValueError("Expected a percentage in [0, 100] for an `error_rate` threshold, got "
                                 f"`{float(threshold):g}` - at `$.threshold`")


_PARSERS[Threshold] = parse_threshold


def _threshold_text(value: float) -> str:
    return f"{float(value):g}%" if type(value) is ThresholdPercent else f"{float(value):g}"


_HTTP_SCHEMES = ("http://", "https://")


class HealthCheckConfig(Base, kw_only=True):
    """The seed's ``health_check`` block (durations in seconds).

    ``endpoint`` says what the endpoint probe reaches: an HTTP(S) URL (GET;
    2xx/3xx pass), a path such as the seed's ``/health`` (GET on the
    backend's ``connection.endpoint``), or ``tcp://host:port`` (a TCP
    connect); without it, a TCP connect to ``connection.endpoint``. Without
    ``checks``, a round is one connectivity check.
    """

    endpoint: Annotated[str, msgspec.Meta(min_length=1)] | None = None
    interval: Duration = 30.0  # type: ignore[assignment]  (a plain float default: schemas can show it)
    timeout: Duration = 5.0  # type: ignore[assignment]
    healthy_threshold: Rounds = 2
    unhealthy_threshold: Rounds = 3
    checks: Annotated[tuple[CheckSpec, ...], msgspec.Meta(min_length=1)] = (CheckSpec(name="connectivity"),)

    def __repr__(self) -> str:  # an endpoint URL may carry a password
        shown = self if self.endpoint is None else msgspec.structs.replace(self, endpoint=redacted_url(self.endpoint))
        return Base.__repr__(shown)

    def __post_init__(self) -> None:
        for field in ("interval", "timeout"):
            if not getattr(self, field) > 0:
                raise ValueError(f"Expected a duration > 0, got `{getattr(self, field):g}s` - at `$.{field}`")
        names = [check.name for check in self.checks]
        for index, name in enumerate(names):
            if name in names[:index]:
                raise ValueError(f"Expected unique check names, got `{printable(name, 40)}` twice "
                                 f"- at `$.checks[{index}].name`")
        if sum(check.weight for check in self.checks) <= 0:
            raise ValueError("Expected checks with a total `weight` > 0, got 0 - at `$.checks`")
        endpoint = self.endpoint
        if endpoint is not None and not (endpoint.startswith(_HTTP_SCHEMES) or endpoint.startswith("/")
                                         or endpoint.startswith("tcp://")):
            raise ValueError("Expected `endpoint` to be an HTTP URL (`http://host:port/health`), a path on the "
                             "connection endpoint (`/health`) or `tcp://host:port`, got "
                             f"`{quoted(redacted_url(endpoint))}` - at `$.endpoint`")


class Registration(Base, kw_only=True):
    """One backend of the registry, as the seed's "Registration Structure"."""

    backend_id: RegistrationName
    backend_type: BackendType
    display_name: str | None = None
    description: str | None = None
    connection: Connection | None = None
    # G1: connection sub-blocks may also sit at the top level.
    tls: Tls | None = None
    pool: Pool | None = None
    timeouts: Timeouts | None = None
    retry: Retry | None = None
    capabilities: list[Union[RegistrationName, Capability]] = []
    interfaces: list[Union[RegistrationName, Interface]] = []
    capacity: Capacity | None = None
    current: Current | None = None
    cost: Cost | None = None
    transfer_costs: TransferCosts | None = None  # G4
    health: Health | None = None
    health_check: HealthCheckConfig | None = None
    recent_incidents: list[Incident] = []  # G4
    regions: list[RegistrationName] = []
    compliance: list[RegistrationName] = []
    consistency: Consistency | None = None
    metadata: dict[str, Any] | None = None

    __post_init__ = _names_checked("backend_id", "capabilities", "interfaces", "regions", "compliance")

    # Normalised views (every item a Struct), for the reference twin and readers;
    # the compiler reads the raw lists to skip a Struct per bare name.
    def capability_list(self) -> list[Capability]:
        return [Capability(name=c) if isinstance(c, str) else c for c in self.capabilities]

    def interface_list(self) -> list[Interface]:
        return [Interface(name=i) if isinstance(i, str) else i for i in self.interfaces]

    @property
    def health_status(self) -> str:
        return self.health.status if self.health is not None else "unknown"

    @property
    def transfer(self) -> TransferCosts | None:
        if self.cost is not None and self.cost.transfer_costs is not None:
            return self.cost.transfer_costs
        return self.transfer_costs

    @property
    def pool_config(self) -> Pool | None:
        return self.connection.pool if self.connection is not None and self.connection.pool else self.pool

    @property
    def retry_config(self) -> Retry | None:
        return self.connection.retry if self.connection is not None and self.connection.retry else self.retry


# --- slots, queries, patterns -----------------------------------------------------

class NameRef(Base, kw_only=True):
    """``{name, version}``; no version means any version."""

    name: SlotName
    version: SlotName | None = None


RequiredName = Union[SlotName, NameRef]


class CapabilityBounds(Base, kw_only=True):
    """The per-capability bounds (issue 13), shared by a slot's
    ``performance`` and a query. They apply to each capability the slot
    requires (every capability of a backend when it requires none): a
    latency a capability does not state passes, as p99's always has;
    ``requires_batch``, ``min_batch_size`` (implies batch) and
    ``min_concurrency`` must be proven, so an unstated value fails; with
    ``per_capability_throughput`` a capability's own ``max_write_rps`` /
    ``max_read_rps``, when stated, must also hold the slot's minimum."""

    max_latency_p50: DurationMs | None = None
    max_latency_p95: DurationMs | None = None
    max_latency_p999: DurationMs | None = None
    requires_batch: bool = False
    min_batch_size: Count | None = None
    min_concurrency: Count | None = None
    per_capability_throughput: bool = False

    @property
    def needs_batch(self) -> bool:
        """``requires_batch``, or a ``min_batch_size`` (which implies it)."""
        return self.requires_batch or self.min_batch_size is not None

    def capability_bounds(self) -> dict[str, Any]:
        """The bounds as keyword arguments (a query's, for its slot)."""
        return {name: getattr(self, name) for name in CapabilityBounds.__struct_fields__}


class SlotPerformance(CapabilityBounds, kw_only=True):
    """A slot's performance needs, and the per-capability bounds
    (CapabilityBounds says what each means)."""

    min_write_rps: NonNegative = 0.0
    min_read_rps: NonNegative = 0.0
    max_latency_p99: DurationMs | None = None
    requires_transactions: bool = False
    requires_atomic_writes: bool = False
    min_storage: Size | None = None


Positive = Annotated[float, msgspec.Meta(gt=0.0, le=1e6)]   # a preference's weight
Limit = Annotated[int, msgspec.Meta(ge=1, le=MAX_COUNT)]      # a group's cap or skew


class Preference(Base, kw_only=True):
    """One preferred term (node affinity's "preferred"): a backend type or a
    compliance tag, and its weight. A backend meeting terms scores
    ``w_affinity * (their weights) / (all weights)``."""

    backend_type: BackendType | None = None
    tag: SlotName | None = None
    weight: Positive = 1.0

    def __post_init__(self) -> None:
        if (self.backend_type is None) == (self.tag is None):
            raise ValueError("Expected exactly one of `backend_type` or `tag` in a preference - at `$`")
        if self.tag is not None and first_control_char(self, ("tag",)) is not None:
            _name_error("$.tag", self.tag)


class SlotRequirement(Base, kw_only=True):
    """The seed's ``slot_requirement`` with SPEC §2's filters, and the opt-in
    strategy fields (issue 13): a ranked ``preferred_region`` list, weighted
    ``preferences``, a ``group`` with its caps (``max_per_backend``,
    ``max_per_region``, ``max_skew``) and the ``current_backend`` stickiness
    keeps."""

    slot_name: SlotName
    description: str | None = None
    capabilities: list[RequiredName] = []
    interfaces: list[RequiredName] = []
    optional: bool = False
    performance: SlotPerformance | None = None
    preferred_region: SlotName | list[SlotName] | None = None   # a list is ranked: first choice scores most
    regions: list[SlotName] | None = None
    compliance: list[SlotName] | None = None
    backend_types: list[BackendType] | None = None
    health_statuses: list[HealthStatus] | None = None
    min_storage: Size | None = None
    consistency: Consistency | None = None
    min_connections: NonNegative | None = None  # connections left (or declared): insufficient_connections
    preferences: list[Preference] | None = None
    group: SlotName | None = None          # default: the slot_name (replicas listed under one name)
    max_per_backend: Limit | None = None
    max_per_region: Limit | None = None
    max_skew: Limit | None = None
    current_backend: SlotName | None = None

    __post_init__ = _names_checked("slot_name", "capabilities", "interfaces", "preferred_region", "regions",
                                   "compliance", "group", "current_backend")

    @property
    def group_name(self) -> str:
        """The group whose caps this slot's placements count against."""
        return self.group if self.group is not None else self.slot_name

    @property
    def grouped(self) -> bool:
        """True when the slot caps its group (anti-affinity or spread)."""
        return self.max_per_backend is not None or self.max_per_region is not None or self.max_skew is not None


class MinCapacity(Base, kw_only=True):
    min_write_rps: NonNegative = 0.0
    min_read_rps: NonNegative = 0.0
    min_storage: Size | None = None


class Query(CapabilityBounds, kw_only=True):
    """The seed's "Backend Querying" request, with the per-capability bounds."""

    required_capabilities: list[RequiredName] = []
    required_interfaces: list[RequiredName] = []
    min_capacity: MinCapacity | None = None
    regions: list[SlotName] | None = None
    health_statuses: list[HealthStatus] | None = None
    backend_types: list[BackendType] | None = None
    compliance: list[SlotName] | None = None
    preferred_region: SlotName | list[SlotName] | None = None
    consistency: Consistency | None = None
    max_latency_p99: DurationMs | None = None

    __post_init__ = _names_checked("required_capabilities", "required_interfaces", "regions", "compliance",
                                   "preferred_region")

    def to_slot(self, slot_name: str = "query") -> SlotRequirement:
        cap = self.min_capacity or MinCapacity()
        return SlotRequirement(
            slot_name=slot_name,
            capabilities=self.required_capabilities,
            interfaces=self.required_interfaces,
            performance=SlotPerformance(min_write_rps=cap.min_write_rps, min_read_rps=cap.min_read_rps,
                                        max_latency_p99=self.max_latency_p99, **self.capability_bounds()),
            min_storage=cap.min_storage,
            regions=self.regions,
            health_statuses=self.health_statuses,
            backend_types=self.backend_types,
            compliance=self.compliance,
            preferred_region=self.preferred_region,
            consistency=self.consistency,
        )


class PatternSlot(Base, kw_only=True):
    """A slot inside a pattern: the seed writes ``required_interfaces``; the
    slot-requirement spelling is accepted too."""

    required_interfaces: list[RequiredName] = []
    required_capabilities: list[RequiredName] = []
    interfaces: list[RequiredName] = []
    capabilities: list[RequiredName] = []
    optional: bool = False
    performance: SlotPerformance | None = None
    preferred_region: SlotName | list[SlotName] | None = None
    regions: list[SlotName] | None = None
    compliance: list[SlotName] | None = None
    backend_types: list[BackendType] | None = None
    health_statuses: list[HealthStatus] | None = None
    min_storage: Size | None = None
    consistency: Consistency | None = None
    min_connections: NonNegative | None = None
    preferences: list[Preference] | None = None
    group: SlotName | None = None
    max_per_backend: Limit | None = None
    max_per_region: Limit | None = None
    max_skew: Limit | None = None
    current_backend: SlotName | None = None

    __post_init__ = _names_checked("required_interfaces", "required_capabilities", "interfaces", "capabilities",
                                   "preferred_region", "regions", "compliance", "group", "current_backend")

    def to_slot(self, slot_name: str, pattern: Pattern | None = None) -> SlotRequirement:
        """The slot requirement; in ``pattern``, the group defaults to the
        pattern's name and the caps to the pattern's (the slot's own win)."""
        caps = {name: getattr(self, name) if getattr(self, name) is not None
                else (getattr(pattern, name) if pattern is not None else None)
                for name in ("max_per_backend", "max_per_region", "max_skew")}
        group = self.group if self.group is not None else (pattern.pattern if pattern is not None else None)
        return SlotRequirement(
            min_connections=self.min_connections, preferences=self.preferences, group=group,
            current_backend=self.current_backend, **caps,
            slot_name=slot_name,
            capabilities=[*self.required_capabilities, *self.capabilities],
            interfaces=[*self.required_interfaces, *self.interfaces],
            optional=self.optional, performance=self.performance,
            preferred_region=self.preferred_region, regions=self.regions, compliance=self.compliance,
            backend_types=self.backend_types, health_statuses=self.health_statuses,
            min_storage=self.min_storage, consistency=self.consistency,
        )


class Pattern(Base, kw_only=True):
    """The seed's ``pattern: multicast-registry`` with named ``slots``."""

    pattern: Name
    slots: dict[Name, PatternSlot]
    pattern_id: str | None = None
    description: str | None = None
    # Caps for every slot of the pattern (one group, named after the pattern).
    max_per_backend: Limit | None = None
    max_per_region: Limit | None = None
    max_skew: Limit | None = None
