"""A catalogue of bad registry and slot inputs, each with its pinned
RegistryError: every ``(location, message)`` it reports.

Four kinds of input: Python registrations (``docs``), YAML and JSON file
text (written to a temporary file; ``{file}`` in a location stands for its
path, followed by ``:line:column`` where the file can tell) and slot
requirements (``slot``). Together they cover wrong types, bad
enumerations, typos, negative / NaN / infinite / huge numbers, bad units,
inline secrets (never echoed), YAML bombs and deep nesting, broken JSON, and
empty files; enormous files are in ``test_loading.py`` (the size limit is
patched low there rather than writing a huge file). The classes of issue 12
(non-regular files, memory, snapshots, secrets, parsers, tables, arguments,
output) are in ``test_hostile.py``; the catalogue below has a case of each
that is a plain bad input.
"""

from __future__ import annotations

import pytest

from prism_match import RegistryError, load_registry
from prism_match.engine import validate_slot

SECRET = "s3cr3t-value-never-shown"
B = {"backend_id": "a", "backend_type": "kafka"}
TYPES = "`kafka`, `nats`, `postgres`, `redis`, `sqlite`, `neptune`, `sqs`, `s3`, `memstore`"
STATUSES = "`healthy`, `degraded`, `unhealthy`, `maintenance`, `unknown`"
LEVELS = "`strong`, `bounded_staleness`, `session`, `eventual`"
UNITS = "`B KB MB GB TB PB KiB MiB GiB TiB PiB`"
DURATION_TEXT = "Expected a duration such as `30s`, `100ms` or `1m30s` (units ns us ms s m h)"
INLINE = ("Inline secret in `{}`: expected a reference `${{SECRET:path}}` (the value is not shown; "
          "pass allow_inline_secrets=True to accept it)")
BOMB = "\n".join(['a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]']
                 + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]) + "\n"


def reg(**fields) -> list[dict]:
    return [{**B, **fields}]


CASES = [
    # --- identity and type -------------------------------------------------------------------
    pytest.param("docs", [{"backend_type": "kafka"}], [("<input> $[0]", "Missing required field `backend_id`")],
                 id="missing-backend-id"),
    pytest.param("docs", [{"backend_id": "", "backend_type": "kafka"}],
                 [("<input> $[0].backend_id", 'Expected `str` of length >= 1, got `""`')], id="empty-backend-id"),
    pytest.param("docs", [{"backend_id": 7, "backend_type": "kafka"}],
                 [("<input> $[0].backend_id", "Expected `str`, got `7`")], id="numeric-backend-id"),
    pytest.param("docs", [{"backend_id": "a"}], [("<input> $[0]", "Missing required field `backend_type`")],
                 id="missing-backend-type"),
    pytest.param("docs", reg(backend_type="oracle"),
                 [("<input> $[0].backend_type", f'Expected one of {TYPES}, got `"oracle"`')], id="unknown-backend-type"),
    pytest.param("docs", reg(backend_type="Kafka"),
                 [("<input> $[0].backend_type", f'Expected one of {TYPES}, got `"Kafka"`')], id="backend-type-case"),
    pytest.param("docs", reg(backend_type=3), [("<input> $[0].backend_type", f"Expected one of {TYPES}, got `3`")],
                 id="backend-type-number"),
    pytest.param("docs", [B, B], [("<input> $[1].backend_id",
                                   "Duplicate backend_id `a`, first defined at <input> $[0].backend_id")],
                 id="duplicate-id"),
    pytest.param("docs", [5], [("<input> $[0]", "Expected `object`, got `5`")], id="registration-not-a-mapping"),
    # --- typos and wrong types -----------------------------------------------------------------
    pytest.param("docs", reg(capacity={"max_write_rsp": 10}),
                 [("<input> $[0].capacity", "Unknown field `max_write_rsp`; did you mean `max_write_rps`?")],
                 id="typo-max-write-rsp"),
    pytest.param("docs", reg(capabilites=["get"]),
                 [("<input> $[0]", "Unknown field `capabilites`; did you mean `capabilities`?")], id="typo-top-level"),
    pytest.param("docs", reg(capabilities="get"), [("<input> $[0].capabilities", 'Expected `array`, got `"get"`')],
                 id="capabilities-not-a-list"),
    pytest.param("docs", reg(capabilities=[{"version": "v2"}]),
                 [("<input> $[0].capabilities[0]", "Missing required field `name`")], id="capability-without-name"),
    pytest.param("docs", reg(interfaces=[["KV"]]),
                 [("<input> $[0].interfaces[0]", "Expected `str | object`, got `array`")], id="interface-nested-list"),
    pytest.param("docs", reg(regions=["us-east-1", 5]), [("<input> $[0].regions[1]", "Expected `str`, got `5`")],
                 id="region-number"),
    pytest.param("docs", reg(connection={"tls": {"enabled": "yes"}}),
                 [("<input> $[0].connection.tls.enabled", 'Expected `bool`, got `"yes"`')], id="tls-enabled-string"),
    pytest.param("docs", reg(health={"last_check_at": "yesterday"}),
                 [("<input> $[0].health.last_check_at",
                   'Expected an RFC 3339 datetime such as `2025-11-15T14:22:00Z`, got `"yesterday"`')],
                 id="bad-timestamp"),
    # --- enumerations --------------------------------------------------------------------------
    pytest.param("docs", reg(health={"status": "ok"}),
                 [("<input> $[0].health.status", f'Expected one of {STATUSES}, got `"ok"`')], id="health-status"),
    pytest.param("docs", reg(consistency="linearizable"),
                 [("<input> $[0].consistency", f'Expected one of {LEVELS}, got `"linearizable"`')], id="consistency"),
    pytest.param("docs", reg(cost={"cost_model": "free"}),
                 [("<input> $[0].cost.cost_model",
                   'Expected one of `pay_per_use`, `provisioned`, `reserved`, `spot`, got `"free"`')], id="cost-model"),
    pytest.param("docs", reg(connection={"auth": {"type": "kerberos"}}),
                 [("<input> $[0].connection.auth.type",
                   'Expected one of `mtls`, `username_password`, `token`, `iam`, got `"kerberos"`')], id="auth-type"),
    pytest.param("docs", reg(connection={"auth": {"username": "u"}}),
                 [("<input> $[0].connection.auth", "Missing required field `type`")], id="auth-without-type"),
    pytest.param("docs", reg(health={"recent_incidents": [{"started_at": "2025-11-15T14:22:00Z", "severity": "bad"}]}),
                 [("<input> $[0].health.recent_incidents[0].severity",
                   'Expected one of `info`, `warning`, `critical`, got `"bad"`')], id="incident-severity"),
    # --- numbers ---------------------------------------------------------------------------------
    pytest.param("docs", reg(capacity={"max_write_rps": -1}),
                 [("<input> $[0].capacity.max_write_rps", "Expected a finite number >= 0, got `-1`")], id="negative-rps"),
    pytest.param("docs", reg(capacity={"max_read_rps": float("nan")}),
                 [("<input> $[0].capacity.max_read_rps", "Expected a finite number, got `nan`")], id="nan-rps"),
    pytest.param("docs", reg(cost={"cost_per_1k_writes": float("inf")}),
                 [("<input> $[0].cost.cost_per_1k_writes", "Expected a finite number, got `inf`")], id="infinite-cost"),
    pytest.param("docs", reg(current={"write_rps": 10**400}),
                 [("<input> $[0].current.write_rps", "Expected a finite number >= 0, got a number too large for a float")],
                 id="huge-int"),
    pytest.param("docs", reg(capacity={"max_write_rps": "100k"}),
                 [("<input> $[0].capacity.max_write_rps", 'Expected a finite number >= 0, got `"100k"`')],
                 id="rate-with-suffix"),
    pytest.param("docs", reg(capacity={"max_write_rps": True}),
                 [("<input> $[0].capacity.max_write_rps", "Expected a finite number >= 0, got `true`")], id="rate-bool"),
    pytest.param("docs", reg(health={"uptime_percent_24h": 100.5}),
                 [("<input> $[0].health.uptime_percent_24h", "Expected a percentage in [0, 100], got `100.5`")],
                 id="uptime-over-100"),
    pytest.param("docs", reg(health={"uptime_percent_24h": -0.1}),
                 [("<input> $[0].health.uptime_percent_24h", "Expected a percentage in [0, 100], got `-0.1`")],
                 id="uptime-negative"),
    pytest.param("docs", reg(connection={"pool": {"min_connections": 1.5}}),
                 [("<input> $[0].connection.pool.min_connections",
                   "Expected a whole number >= 0 that fits in 64 bits, got `1.5`")], id="count-float"),
    pytest.param("docs", reg(connection={"pool": {"max_connections": 2**70}}),
                 [("<input> $[0].connection.pool.max_connections",
                   "Expected a whole number >= 0 that fits in 64 bits, got `1180591620717411303424`")], id="count-huge"),
    pytest.param("docs", reg(connection={"pool": {"min_connections": 10, "max_connections": 5}}),
                 [("<input> $[0].connection.pool.min_connections",
                   "Expected `min_connections` <= `max_connections` (5), got `10`")], id="pool-min-over-max"),
    pytest.param("docs", reg(connection={"retry": {"initial_backoff": "10s", "max_backoff": "1s"}}),
                 [("<input> $[0].connection.retry.initial_backoff",
                   "Expected `initial_backoff` <= `max_backoff` (1s), got `10s`")], id="backoff-order"),
    pytest.param("docs", reg(retry={"backoff_multiplier": 0.5}),
                 [("<input> $[0].retry.backoff_multiplier", "Expected a finite number >= 1, got `0.5`")],
                 id="backoff-multiplier-below-one"),
    # --- units -----------------------------------------------------------------------------------
    pytest.param("docs", reg(capacity={"max_storage": "10XB"}),
                 [("<input> $[0].capacity.max_storage", f'Expected a size unit among {UNITS}, got `"10XB"`')],
                 id="size-unknown-unit"),
    pytest.param("docs", reg(capacity={"max_storage": "-1TB"}),
                 [("<input> $[0].capacity.max_storage",
                   'Expected a size in bytes or a string such as `10GB` or `512MiB`, got `"-1TB"`')], id="size-negative"),
    pytest.param("docs", reg(current={"storage_used": -5}),
                 [("<input> $[0].current.storage_used", "Expected a size >= 0, got `-5`")], id="size-negative-number"),
    pytest.param("docs", reg(connection={"timeouts": {"connect_timeout": 30}}),
                 [("<input> $[0].connection.timeouts.connect_timeout",
                   "Expected a duration with a unit such as `30s` or `100ms`, got the bare number `30`")],
                 id="duration-bare-number"),
    pytest.param("docs", reg(connection={"pool": {"max_idle_time": "5 minutes"}}),
                 [("<input> $[0].connection.pool.max_idle_time", f'{DURATION_TEXT}, got `"5 minutes"`')],
                 id="duration-words"),
    pytest.param("docs", reg(capabilities=[{"name": "get", "performance": {"latency": {"p99_ms": "25ms"}}}]),
                 [("<input> $[0].capabilities[0].performance.latency.p99_ms",
                   'Expected a finite number >= 0, got `"25ms"`')], id="ms-field-with-unit"),
    # --- secrets (the value never appears) ----------------------------------------------------------
    pytest.param("docs", reg(connection={"auth": {"type": "username_password", "password": SECRET}}),
                 [("<input> $[0].connection.auth.password", INLINE.format("password"))], id="inline-password"),
    pytest.param("docs", reg(connection={"auth": {"type": "token", "token": SECRET}}),
                 [("<input> $[0].connection.auth.token", INLINE.format("token"))], id="inline-token"),
    pytest.param("docs", reg(metadata={"vault": {"key": SECRET}}),
                 [("<input> $[0].metadata.vault.key", INLINE.format("key"))], id="inline-key-in-metadata"),
    pytest.param("docs", reg(metadata={"Secret": SECRET}),
                 [("<input> $[0].metadata.Secret", INLINE.format("Secret"))], id="inline-secret-capitalised"),
    pytest.param("docs", reg(connection={"auth": {"type": "mtls", "password": SECRET}}),
                 [("<input> $[0].connection.auth", "Unknown field `password`")], id="password-on-mtls-auth"),
    pytest.param("docs", reg(connection={"auth": {"type": "username_password", "pasword": SECRET}}),
                 [("<input> $[0].connection.auth", "Unknown field `pasword`; did you mean `password`?")],
                 id="password-typo"),
    pytest.param("docs", reg(connection={"auth": {"type": "token", "token": [SECRET]}}),
                 [("<input> $[0].connection.auth.token", "Expected `str | null`, got `array`")], id="token-wrong-type"),
    # --- several problems at once ------------------------------------------------------------------------
    pytest.param("docs", [{"backend_id": "a", "backend_type": "x", "capacity": {"max_write_rps": -1}},
                          {"backend_id": "b", "backend_type": "kafka", "health": {"status": "up"}}],
                 [("<input> $[0].backend_type", f'Expected one of {TYPES}, got `"x"`'),
                  ("<input> $[0].capacity.max_write_rps", "Expected a finite number >= 0, got `-1`"),
                  ("<input> $[1].health.status", f'Expected one of {STATUSES}, got `"up"`')], id="several-problems"),
    # --- YAML files ------------------------------------------------------------------------------------
    pytest.param("yaml", "backend_id: a\nbackend_type: kafka\n  bad: [1, 2\n",
                 [("{file}", "Invalid YAML: mapping values are not allowed in this context (line 3, column 6)")],
                 id="yaml-syntax"),
    pytest.param("yaml", "backend_id: a\n\tbackend_type: kafka\n",
                 [("{file}", "Invalid YAML: found a tab character that violates indentation (line 2, column 1)")],
                 id="yaml-tab"),
    pytest.param("yaml", f"backend_id: a\nconnection:\n  auth:\n    password: '{SECRET}\n",
                 [("{file}", "Invalid YAML: found unexpected end of stream (line 5, column 1)")],
                 id="yaml-unterminated-secret"),
    pytest.param("yaml", "backend_id: a\nbackend_type: kafka\nbackend_type: redis\n",
                 [("{file}", "Invalid YAML: found duplicate key `backend_type` (line 3, column 1)")], id="yaml-duplicate-key"),
    pytest.param("yaml", BOMB, [("{file}", "Document expands to more than 2,000,000 nodes (alias expansion?); refused")],
                 id="yaml-billion-laughs"),
    pytest.param("yaml", "[" * 3000 + "]" * 3000,
                 [("{file}", "Invalid YAML: exceeded maximum nesting depth (line 1, column 1001)")], id="yaml-deep-flow"),
    pytest.param("yaml", "".join("  " * i + "a:\n" for i in range(100)) + "  " * 100 + "b: 1\n",
                 [("{file}", "Nesting deeper than 64 levels (line 65)")], id="yaml-deep-block"),
    pytest.param("yaml", "x: &x [*x]\n", [("{file}", "Recursive alias: a node contains itself (line 1)")],
                 id="yaml-recursive-alias"),
    pytest.param("yaml", "", [("{file}", "File is empty: expected backend registrations")], id="yaml-empty"),
    pytest.param("yaml", "---\n# nothing\n...\n", [("{file}", "File holds no YAML documents")], id="yaml-no-documents"),
    pytest.param("yaml", "backend_id: a\nbackend_type: kafka\nhealth:\n  last_check_at: 2025-13-45\n",
                 [("{file}", "Invalid YAML: not a valid timestamp: month must be in 1..12 (line 4, column 18)")],
                 id="yaml-impossible-date"),
    pytest.param("yaml", "backend_id: a\nbackend_type: kafka\ncapacity:\n  max_storage: !!binary aGk=\n",
                 [("{file}:4:16 $.capacity.max_storage",
                   "Expected a size in bytes or a string such as `10GB` or `512MiB`, got `bytes`")], id="yaml-binary"),
    pytest.param("yaml", "backend_id: a\nbackend_type: kafka\n---\nbackend_id: a\nbackend_type: nats\n",
                 [("{file}#2:4:13 $.backend_id", "Duplicate backend_id `a`, first defined at {file}#1:1:13 $.backend_id")],
                 id="yaml-duplicate-across-documents"),
    pytest.param("yaml", "just a string\n", [("{file}:1:1 $", 'Expected `object`, got `"just a string"`')],
                 id="yaml-scalar-document"),
    # --- JSON files ------------------------------------------------------------------------------------
    pytest.param("json", '[{"backend_id": "a", "backend_type": "kafka"', [("{file}", "Invalid JSON: Input data was truncated (line 1, column 45)")],
                 id="json-truncated"),
    pytest.param("json", '[{"backend_id": "a", "backend_type": "kafka",}]',
                 [("{file}", "Invalid JSON: JSON is malformed: trailing comma in object (line 1, column 46)")], id="json-trailing-comma"),
    pytest.param("json", '[{"backend_id": "a", "backend_type": "kafka", "capacity": {"max_write_rps": NaN}}]',
                 [("{file}", "Invalid JSON: JSON is malformed: invalid character (line 1, column 77)")], id="json-nan-literal"),
    pytest.param("json", '[{"backend_id": "a", "backend_type": "kafka", "capacity": {"max_write_rps": 1e999}}]',
                 [("{file}:1:77 $[0].capacity.max_write_rps",
                   "Expected a finite number >= 0, got a number too large for a float")], id="json-huge-float"),
    pytest.param("json", "[" * 200_000 + "]" * 200_000, [("{file}", "Invalid JSON: nested too deep")], id="json-deep"),
    pytest.param("json", "", [("{file}", "File is empty: expected backend registrations")], id="json-empty"),
    pytest.param("json", '{"backends": {"backend_id": "a"}}', [("{file}:1:14 $.backends", "Expected `array`, got `object`")],
                 id="json-backends-not-a-list"),
    # --- slots --------------------------------------------------------------------------------------------
    pytest.param("slot", {"slot_name": "storage", "performance": {"min_write_rps": -10}},
                 [("slot `storage` $.performance.min_write_rps", "Expected a finite number >= 0, got `-10`")],
                 id="slot-negative-rps"),
    pytest.param("slot", {"slot_name": "storage", "performance": {"max_latency_p99": 25}},
                 [("slot `storage` $.performance.max_latency_p99",
                   "Expected a duration with a unit such as `30s` or `100ms`, got the bare number `25`")],
                 id="slot-bare-latency"),
    pytest.param("slot", {"slot_name": "storage", "min_storage": "1 TB please"},
                 [("slot `storage` $.min_storage",
                   'Expected a size in bytes or a string such as `10GB` or `512MiB`, got `"1 TB please"`')],
                 id="slot-bad-size"),
    pytest.param("slot", {"slot_name": "storage", "consistency": "strongest"},
                 [("slot `storage` $.consistency", f'Expected one of {LEVELS}, got `"strongest"`')],
                 id="slot-consistency"),
    pytest.param("slot", {"slot_name": "storage", "health_statuses": ["healthy", "fine"]},
                 [("slot `storage` $.health_statuses[1]", f'Expected one of {STATUSES}, got `"fine"`')],
                 id="slot-health-status"),
    pytest.param("slot", {"slot_name": "storage", "backend_types": ["mysql"]},
                 [("slot `storage` $.backend_types[0]", f'Expected one of {TYPES}, got `"mysql"`')],
                 id="slot-backend-type"),
    pytest.param("slot", {"slot_name": "storage", "capabilites": ["get"]},
                 [("slot `storage` $", "Unknown field `capabilites`; did you mean `capabilities`?")], id="slot-typo"),
    pytest.param("slot", {"slot_name": "", "optional": "no"},
                 [("slot `` $.slot_name", 'Expected `str` of length >= 1, got `""`'),
                  ("slot `` $.optional", 'Expected `bool`, got `"no"`')], id="slot-empty-name"),
    pytest.param("slot", {"capabilities": ["get"]}, [("slot $", "Missing required field `slot_name`")],
                 id="slot-without-name"),
    pytest.param("slot", {"slot_name": "s", "performance": {"min_read_rps": float("nan")}},
                 [("slot `s` $.performance.min_read_rps", "Expected a finite number, got `nan`")], id="slot-nan"),
    pytest.param("slot", {"slot_name": "s", "interfaces": [{"version": "v1"}]},
                 [("slot `s` $.interfaces[0]", "Missing required field `name`")], id="slot-interface-without-name"),
    pytest.param("slot", ["storage"], [("slot", "Expected a slot mapping or a prepared slot, got `list`")],
                 id="slot-not-a-mapping"),
    # --- control characters are shown escaped, wherever the text comes from --------------------
    pytest.param("docs", reg(**{"\x1b[31mx": 1}), [("<input> $[0]", "Unknown field `\\x1b[31mx`")],
                 id="escape-in-field-name"),
    pytest.param("docs", reg(capacity={"max_storage": "\x1b[2J10XB"}),
                 [("<input> $[0].capacity.max_storage",
                   f'Expected a size in bytes or a string such as `10GB` or `512MiB`, got `"\\x1b[2J10XB"`')],
                 id="escape-in-a-unit"),
    pytest.param("docs", [{**B, "backend_id": "a\x07"}],
                 [("<input> $[0].backend_id", 'Expected a name without control characters, got `"a\\x07"`')],
                 id="escape-in-an-id"),
    pytest.param("docs", [{**B, "backend_id": "a\u202eb"}, {**B, "backend_id": "c", "regions": ["x\x85"]}], [],
                 id="bidi-and-c1-in-names-load"),  # allowed in names, escaped wherever shown (test_hostile)
    # --- issue 12: secrets whatever their spelling, URLs, tags, units, duplicates, limits ---------
    pytest.param("docs", reg(metadata={" Password ": SECRET, "API-Key": SECRET, "clientSecret": SECRET}),
                 [("<input> $[0].metadata[\" Password \"]", INLINE.format(" Password ")),
                  ("<input> $[0].metadata.API-Key", INLINE.format("API-Key")),
                  ("<input> $[0].metadata.clientSecret", INLINE.format("clientSecret"))], id="secret-key-spellings"),
    pytest.param("docs", reg(connection={"endpoint": f"postgres://u:{SECRET}@db/x"}),
                 [("<input> $[0].connection.endpoint",
                   "Inline secret in the password of the URL in `endpoint`: expected a reference `${SECRET:path}` "
                   "(the value is not shown; pass allow_inline_secrets=True to accept it)")], id="url-password"),
    pytest.param("docs", reg(capacity={"max_write_rps": "x"}, connection={"auth": {"type": "token", "token": SECRET}}),
                 [("<input> $[0].capacity.max_write_rps", 'Expected a finite number >= 0, got `"x"`'),
                  ("<input> $[0].connection.auth.token", INLINE.format("token"))], id="secret-and-type-error-together"),
    pytest.param("docs", reg(capacity={"max_storage": "１０TB"}),
                 [("<input> $[0].capacity.max_storage",
                   'Expected a size in bytes or a string such as `10GB` or `512MiB`, got `"１０TB"`')],
                 id="size-fullwidth-digits"),
    pytest.param("docs", reg(connection={"timeouts": {"connect_timeout": "1h1h"}}),
                 [("<input> $[0].connection.timeouts.connect_timeout",
                   'Expected each unit at most once in a duration, got `h` twice in `"1h1h"`')], id="duration-repeated-unit"),
    pytest.param("docs", reg(interfaces=[f"i{i}" for i in range(1025)]),
                 [("<input> $[0].interfaces", "Expected at most 1,024 interfaces in one backend, got 1,025")],
                 id="too-many-names"),
    pytest.param("yaml", f"backend_id: a\nbackend_type: kafka\nconnection:\n  auth:\n    type: token\n"
                         f"    token: !!int {SECRET}\n",
                 [("{file}", "Invalid YAML: not a valid int (the value is not shown) (line 6, column 12)")],
                 id="yaml-tag-on-secret"),
    pytest.param("yaml", "backend_id: a\nbackend_type: kafka\ndisplay_name: !!bool maybe\n",
                 [("{file}", "Invalid YAML: not a valid bool (the value is not shown) (line 3, column 15)")],
                 id="yaml-bool-tag"),
    pytest.param("yaml", "backend_id: a\nbackend_type: kafka\ndisplay_name: !!timestamp soon\n",
                 [("{file}", "Invalid YAML: not a valid timestamp (the value is not shown) (line 3, column 15)")],
                 id="yaml-timestamp-tag"),
    pytest.param("yaml", "backend_id: a\0\nbackend_type: kafka\n",
                 [("{file}", "Invalid YAML: character `\\x00` is not allowed (line 1, column 14)")], id="yaml-nul"),
    pytest.param("json", '{"backends": [{"backend_id": "a", "backend_type": "kafka"}], "backends": []}',
                 [("{file}", "Invalid JSON: found duplicate key `backends` (line 1, column 62)")], id="json-duplicate-key"),
    pytest.param("json", '[{"backend_id": "a", "backend_type": "kafka", "health": {"status": "healthy", "status": "down"}}]',
                 [("{file}", "Invalid JSON: found duplicate key `status` (line 1, column 79)")], id="json-duplicate-nested"),
]


@pytest.mark.parametrize(("kind", "content", "expected"), CASES)
def test_bad_input(tmp_path, kind, content, expected):
    file = None
    if kind in ("yaml", "json"):
        file = tmp_path / f"input.{kind}"
        file.write_text(content)
    if not expected:
        load_registry(content)
        return
    with pytest.raises(RegistryError) as info:
        if kind == "slot":
            validate_slot(content)
        else:
            load_registry(file if file is not None else content)
    want = [(loc.replace("{file}", str(file)), msg.replace("{file}", str(file))) for loc, msg in expected]
    assert info.value.errors == want
    # The text shows every problem, and never a secret.
    text = str(info.value)
    for loc, msg in want:
        assert f"{msg} - at {loc}" in text
    assert SECRET not in text and SECRET not in repr(info.value)


def test_catalogue_is_large():
    assert len(CASES) >= 40
