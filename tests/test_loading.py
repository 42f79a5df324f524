"""Loading (SPEC §1): every kind of source, errors collected across and
within documents with their locations, duplicates, secrets, strictness,
slots validated the same way, and hostile input failing fast with nothing
but RegistryError."""

from __future__ import annotations

import gc
import json

import orjson
import pytest
import yaml

import prism_match.loading as loading
from prism_match import RegistryError, load_registry
from prism_match.loading import MAX_DEPTH, MAX_ERRORS, load_registrations, read_file_documents
from prism_match.engine import validate_slot
from prism_match.synthetic import generate_registry

BASE = {"backend_id": "a", "backend_type": "kafka"}
SECRET = "hunter2-very-secret"


def errors_of(source, **options) -> list[tuple[str, str]]:
    with pytest.raises(RegistryError) as info:
        load_registry(source, **options)
    return info.value.errors


# --- sources ----------------------------------------------------------------------------------

def test_list_of_dicts_and_tuple_and_wrapper_mapping():
    docs = [BASE, {"backend_id": "b", "backend_type": "redis"}]
    assert load_registry(docs).backend_ids == ["a", "b"]
    assert load_registry(tuple(docs)).backend_ids == ["a", "b"]
    assert load_registry({"backends": docs}).backend_ids == ["a", "b"]
    assert load_registry(BASE).backend_ids == ["a"]


def test_empty_list_is_an_empty_registry():
    assert len(load_registry([])) == 0
    assert len(load_registry({"backends": []})) == 0


def test_yaml_multi_document_file(tmp_path):
    path = tmp_path / "reg.yaml"
    path.write_text("backend_id: a\nbackend_type: kafka\n---\n---\nbackend_id: b\nbackend_type: nats\n")
    assert load_registry(path).backend_ids == ["a", "b"]
    assert [name for name, _ in read_file_documents(path)] == [f"{path}#1", f"{path}#3"]


def test_yaml_file_with_a_list_or_backends_key(tmp_path):
    (tmp_path / "list.yaml").write_text("- backend_id: a\n  backend_type: kafka\n")
    (tmp_path / "wrapped.yml").write_text("backends:\n  - backend_id: b\n    backend_type: kafka\n")
    assert load_registry(tmp_path / "list.yaml").backend_ids == ["a"]
    assert load_registry(str(tmp_path / "wrapped.yml")).backend_ids == ["b"]


def test_json_file_list_and_wrapper(tmp_path):
    (tmp_path / "a.json").write_bytes(orjson.dumps([BASE]))
    (tmp_path / "b.json").write_bytes(orjson.dumps({"backends": [dict(BASE, backend_id="b")]}))
    (tmp_path / "c.json").write_bytes(orjson.dumps(dict(BASE, backend_id="c")))
    assert load_registry(tmp_path / "a.json").backend_ids == ["a"]
    assert load_registry(tmp_path / "b.json").backend_ids == ["b"]
    assert load_registry(tmp_path / "c.json").backend_ids == ["c"]


def test_directory_sorted_by_name_recursively_skipping_hidden(tmp_path):
    (tmp_path / "b.yaml").write_text("backend_id: b\nbackend_type: kafka\n")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "z.json").write_text(json.dumps([{"backend_id": "z", "backend_type": "kafka"}]))
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "d").mkdir()
    (tmp_path / "c" / "d" / "y.yml").write_text("backend_id: y\nbackend_type: kafka\n")
    (tmp_path / "notes.txt").write_text("not a registry")
    (tmp_path / ".hidden.yaml").write_text("backend_id: h\nbackend_type: kafka\n")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "x.yaml").write_text("{{{ broken")
    assert load_registry(tmp_path).backend_ids == ["z", "b", "y"]


def test_directory_errors_name_each_file(tmp_path):
    (tmp_path / "1.yaml").write_text("backend_id: a\nbackend_type: kafka\n")
    (tmp_path / "2.yaml").write_text("backend_id: [\n")
    (tmp_path / "3.json").write_text("[{\"backend_id\": \"c\", \"backend_type\": \"nope\"}]")
    (tmp_path / "4.yaml").write_text("backend_id: a\nbackend_type: kafka\n")
    errors = errors_of(tmp_path)
    assert [loc for loc, _ in errors] == [f"{tmp_path}/2.yaml", f"{tmp_path}/3.json:1:38 $[0].backend_type",
                                          f"{tmp_path}/4.yaml:1:13 $.backend_id"]
    assert errors[0][1].startswith("Invalid YAML: ")
    assert errors[2][1] == f"Duplicate backend_id `a`, first defined at {tmp_path}/1.yaml:1:13 $.backend_id"


def test_pathlike_and_str_paths(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("backend_id: a\nbackend_type: kafka\n")
    assert load_registry(str(path)).backend_ids == load_registry(path).backend_ids == ["a"]


@pytest.mark.parametrize(("source", "location", "message"), [
    (42, "<input>", "Expected a path, a list of mappings or a mapping, got `int`"),
    (None, "<input>", "Expected a path, a list of mappings or a mapping, got `NoneType`"),
    (b"backend_id: a", "<input>", "Expected a path, a list of mappings or a mapping, got `bytes`"),
    ({"a", "b"}, "<input>", "Expected a path, a list of mappings or a mapping, got `set`"),
    ("", "''", "Expected a path to a file or directory, got an empty or invalid path"),
    ("a\x00b", "'a\\x00b'", "Expected a path to a file or directory, got an empty or invalid path"),
    ({"slot_name": "x"}, "<input> $", "Expected a registration or a mapping with `backends`"),
])
def test_wrong_top_level_types(source, location, message):
    assert errors_of(source) == [(location, message)]


def test_missing_file_and_empty_directory(tmp_path):
    assert errors_of(tmp_path / "nope.yaml") == [(f"{tmp_path}/nope.yaml", "No such file or directory")]
    (tmp_path / "empty").mkdir()
    assert errors_of(tmp_path / "empty") == [(f"{tmp_path}/empty", "Directory holds no .json/.yaml/.yml files")]


# --- errors collected --------------------------------------------------------------------------

def test_all_errors_across_and_within_documents():
    docs = [
        {"backend_id": "a", "backend_type": "kafkaX", "capacity": {"max_write_rps": -1, "max_read_rps": "x"},
         "regions": [1, "ok", 2]},
        {"backend_id": "ok", "backend_type": "redis"},
        {"backend_id": "", "backend_type": "redis", "capabilities": [{"version": "v1"}, 5, "get",
                                                                  {"name": "x", "performance": {"max_write_rps": -2}}]},
    ]
    assert errors_of(docs) == [
        ("<input> $[0].backend_type", "Expected one of `kafka`, `nats`, `postgres`, `redis`, `sqlite`, `neptune`, "
                                      "`sqs`, `s3`, `memstore`, got `\"kafkaX\"`"),
        ("<input> $[0].capacity.max_write_rps", "Expected a finite number >= 0, got `-1`"),
        ("<input> $[0].capacity.max_read_rps", "Expected a finite number >= 0, got `\"x\"`"),
        ("<input> $[0].regions[0]", "Expected `str`, got `1`"),
        ("<input> $[0].regions[2]", "Expected `str`, got `2`"),
        ("<input> $[2].backend_id", "Expected `str` of length >= 1, got `\"\"`"),
        ("<input> $[2].capabilities[0]", "Missing required field `name`"),
        ("<input> $[2].capabilities[1]", "Expected `str | object`, got `5`"),
        ("<input> $[2].capabilities[3].performance.max_write_rps", "Expected a finite number >= 0, got `-2`"),
    ]


def test_error_text_lists_every_problem():
    with pytest.raises(RegistryError) as info:
        load_registry([{"backend_id": "a", "backend_type": "x"}, {"backend_id": "b", "backend_type": "y"}])
    text = str(info.value)
    assert text.startswith("2 problems:\n")
    assert "- at <input> $[0].backend_type" in text and "- at <input> $[1].backend_type" in text
    assert isinstance(info.value, ValueError)


def test_schema_rules_and_registration_rules_are_reported_together():
    errors = errors_of([
        {"backend_id": "a", "backend_type": "kafka", "connection": {"auth": {"type": "token", "token": SECRET}}},
        {"backend_id": "b", "backend_type": "bad"},
        {"backend_id": "a", "backend_type": "kafka"},
    ])
    assert [loc for loc, _ in errors] == ["<input> $[0].connection.auth.token", "<input> $[1].backend_type",
                                          "<input> $[2].backend_id"]


def test_errors_are_capped(monkeypatch):
    docs = [{"backend_id": f"x{i}", "backend_type": "kafka", "capacity": {"max_write_rps": -1}} for i in range(500)]
    errors = errors_of(docs)
    assert len(errors) == MAX_ERRORS + 1
    assert errors[-1] == ("<all>", f"Stopped after {MAX_ERRORS} problems")


def test_unknown_field_did_you_mean_and_strict_false():
    doc = {**BASE, "capacity": {"max_write_rsp": 5, "max_read_rps": 1}, "colour": "blue"}
    assert errors_of([doc]) == [
        ("<input> $[0].capacity", "Unknown field `max_write_rsp`; did you mean `max_write_rps`?"),
        ("<input> $[0]", "Unknown field `colour`"),
    ]
    reg = load_registry([doc], strict=False)["a"]
    assert reg.capacity.max_read_rps == 1 and reg.capacity.max_write_rps is None


def test_strict_false_still_reports_real_errors():
    doc = {**BASE, "typo": 1, "capacity": {"max_write_rps": -5}}
    assert errors_of([doc], strict=False) == [("<input> $[0].capacity.max_write_rps",
                                                "Expected a finite number >= 0, got `-5`")]


def test_unknown_key_beside_backends():
    assert errors_of({"backends": [BASE], "version": 2}) == [("<input> $.version", "Unknown field `version`")]
    assert load_registry({"backends": [BASE], "version": 2}, strict=False).backend_ids == ["a"]
    assert errors_of({"backends": 5}) == [("<input> $.backends", "Expected `array`, got `5`")]


def test_duplicate_ids_name_both_places(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("backend_id: a\nbackend_type: kafka\n---\nbackend_id: b\nbackend_type: kafka\n"
                    "---\nbackend_id: a\nbackend_type: redis\n")
    assert errors_of(path) == [(f"{path}#3:7:13 $.backend_id",
                                f"Duplicate backend_id `a`, first defined at {path}#1:1:13 $.backend_id")]
    assert errors_of({"backends": [BASE, BASE]}) == [
        ("<input> $.backends[1].backend_id", "Duplicate backend_id `a`, first defined at <input> $.backends[0].backend_id")]


def test_multi_document_locations(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("backend_id: a\nbackend_type: kafka\n---\nbackend_id: b\nbackend_type: kafka\n"
                    "capacity:\n  max_storage: 5XB\n")
    assert errors_of(path) == [(f"{path}#2:7:16 $.capacity.max_storage",
                                "Expected a size unit among `B KB MB GB TB PB KiB MiB GiB TiB PiB`, got `\"5XB\"`")]


def test_nothing_is_half_loaded(tmp_path):
    # One bad backend among many valid ones: no registry at all.
    docs = generate_registry(50, seed=3)
    docs[37] = dict(docs[37], capacity={"max_write_rps": "lots"})
    with pytest.raises(RegistryError) as info:
        load_registry(docs)
    assert [loc for loc, _ in info.value.errors] == ["<input> $[37].capacity.max_write_rps"]


def test_input_documents_are_not_modified():
    docs = [{"backend_id": "a", "backend_type": "x", "capacity": {"max_write_rps": -1, "bogus": 2},
             "regions": [1, 2]}]
    snapshot = json.dumps(docs)
    with pytest.raises(RegistryError):
        load_registry(docs)
    assert json.dumps(docs) == snapshot


# --- values ----------------------------------------------------------------------------------------

def test_sizes_durations_and_ms_fields():
    reg = load_registry([{**BASE, "capacity": {"max_storage": "1.5KiB"}, "current": {"storage_used": 2048},
                          "connection": {"timeouts": {"connect_timeout": "1m30s"}},
                          "capabilities": [{"name": "x", "performance": {"latency": {"p99_ms": 25}}}]}])["a"]
    assert reg.capacity.max_storage == 1536.0
    assert reg.current.storage_used == 2048.0
    assert reg.connection.timeouts.connect_timeout == 90.0
    assert reg.capabilities[0].p99_ms == 25.0


def test_ms_fields_are_plain_numbers():
    assert errors_of([{**BASE, "capabilities": [{"name": "x", "performance": {"latency": {"p99_ms": "25ms"}}}]}]) == [
        ("<input> $[0].capabilities[0].performance.latency.p99_ms", "Expected a finite number >= 0, got `\"25ms\"`")]


# --- secrets -------------------------------------------------------------------------------------

SECRET_DOCS = [
    {**BASE, "connection": {"auth": {"type": "username_password", "password": SECRET}}},
    {**BASE, "connection": {"auth": {"type": "token", "token": SECRET}}},
    {**BASE, "metadata": {"key": SECRET}},
    {**BASE, "metadata": {"team": {"Secret": SECRET}}},
    {**BASE, "metadata": {"list": [{"password": SECRET}]}},
]


@pytest.mark.parametrize("doc", SECRET_DOCS)
def test_inline_secrets_are_errors_that_never_echo_the_value(doc):
    with pytest.raises(RegistryError) as info:
        load_registry([doc])
    [(location, message)] = info.value.errors
    assert message.startswith("Inline secret in `") and "allow_inline_secrets=True" in message
    assert SECRET not in str(info.value) and SECRET not in repr(info.value)
    registry = load_registry([doc], allow_inline_secrets=True)
    assert SECRET not in repr(registry["a"]) and SECRET not in str(registry["a"])


def test_secret_references_are_accepted():
    reg = load_registry([{**BASE, "connection": {"auth": {"type": "token", "token": "${SECRET:prism/t}"}},
                          "metadata": {"key": "${SECRET:prism/k}", "secret": None}}])["a"]
    assert reg.connection.auth.token == "${SECRET:prism/t}"


def test_secrets_of_the_wrong_type_are_not_shown():
    errors = errors_of([{**BASE, "connection": {"auth": {"type": "token", "token": 12345678}}},
                        {**BASE, "backend_id": "b", "connection": {"auth": {"type": "token", "token": [SECRET]}}}])
    assert errors == [("<input> $[0].connection.auth.token", "Expected `str | null`, got `int`"),
                      ("<input> $[1].connection.auth.token", "Expected `str | null`, got `array`")]
    assert "12345678" not in str(errors)


def test_secret_never_appears_in_yaml_errors(tmp_path):
    cases = [
        f"backend_id: a\nconnection:\n  auth:\n    password: '{SECRET}\n",
        f"backend_id: a\npassword: {SECRET}\n  bad: indent\n",
        f"backend_id: a\n\tpassword: {SECRET}\n",
        f"password: {SECRET}\npassword: {SECRET}\n",
        f"backend_id: a\nmetadata: {{key: {SECRET}, [x]: 1}}\n",
        f"backend_id: a\nmetadata: !!python/object {SECRET}\n",
        f"backend_id: a\nmetadata: *{SECRET}\n",
        f"backend_id: a\nmetadata: \"{SECRET}\\q\"\n",
    ]
    for i, text in enumerate(cases):
        path = tmp_path / f"{i}.yaml"
        path.write_text(text)
        with pytest.raises(RegistryError) as info:
            load_registry(path)
        assert SECRET not in str(info.value), text


def test_operation_parameters_named_key_are_not_secrets():
    reg = load_registry([{**BASE, "interfaces": [{"name": "KV", "operations": [
        {"name": "Get", "parameters": {"key": "string (required)", "password": "string"}}]}]}])["a"]
    assert reg.interfaces[0].operations[0].parameters["key"] == "string (required)"


# --- slots ---------------------------------------------------------------------------------------

def test_slot_errors_name_the_slot_and_the_field():
    with pytest.raises(RegistryError) as info:
        validate_slot({"slot_name": "storage", "performance": {"min_write_rps": -1, "max_latency_p99": 25},
                     "consistency": "linear", "health_statuses": ["ok"], "bogus": True})
    assert info.value.errors == [
        ("slot `storage` $.performance.min_write_rps", "Expected a finite number >= 0, got `-1`"),
        ("slot `storage` $.performance.max_latency_p99",
         "Expected a duration with a unit such as `30s` or `100ms`, got the bare number `25`"),
        ("slot `storage` $.consistency",
         "Expected one of `strong`, `bounded_staleness`, `session`, `eventual`, got `\"linear\"`"),
        ("slot `storage` $.health_statuses[0]",
         "Expected one of `healthy`, `degraded`, `unhealthy`, `maintenance`, `unknown`, got `\"ok\"`"),
        ("slot `storage` $", "Unknown field `bogus`"),
    ]


def test_slot_error_with_the_briefs_example():
    with pytest.raises(RegistryError, match=r"^Expected a finite number >= 0, got `-5` - at slot `storage` "
                                            r"\$\.performance\.min_write_rps$"):
        validate_slot({"slot_name": "storage", "performance": {"min_write_rps": -5}})


def test_query_errors():
    with pytest.raises(RegistryError) as info:
        validate_slot({"query": {"min_capacity": {"min_storage": "lots"}, "backend_types": ["oracle"]}})
    assert [loc for loc, _ in info.value.errors] == ["query $.min_capacity.min_storage", "query $.backend_types[0]"]


# --- hostile input ------------------------------------------------------------------------------------

BOMB = "\n".join(
    ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"a{i}: &a{i} [{', '.join(f'*a{i - 1}' for _ in range(9))}]" for i in range(1, 12)]) + "\n"


def test_billion_laughs_is_refused(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)  # 9**12 ≈ 2.8e11 strings from a few hundred bytes
    assert errors_of(path) == [(str(path), "Document expands to more than 2,000,000 nodes (alias expansion?); refused")]


def test_bomb_inside_a_valid_looking_registration(tmp_path):
    # Aliases fanning out through typed fields (capabilities of capabilities).
    lines = ["lims: &l [" + ", ".join(["x"] * 200) + "]", "caps: &c ["]
    lines[-1] += ", ".join(["{name: n, limitations: *l}"] * 200) + "]"
    lines += ["backends:"] + [f"  - {{backend_id: b{i}, backend_type: kafka, capabilities: *c}}" for i in range(200)]
    path = tmp_path / "fan.yaml"
    path.write_text("\n".join(lines) + "\n")
    assert errors_of(path) == [(str(path), "Document expands to more than 2,000,000 nodes (alias expansion?); refused")]


def test_recursive_alias_is_refused(tmp_path):
    path = tmp_path / "rec.yaml"
    path.write_text("backend_id: a\nbackend_type: kafka\nmetadata: &m {self: *m}\n")
    assert errors_of(path) == [(str(path), "Recursive alias: a node contains itself (line 3)")]


def test_shared_anchors_that_stay_small_are_fine(tmp_path):
    path = tmp_path / "anchors.yaml"
    path.write_text("defaults: &d {max_write_rps: 10, max_read_rps: 20}\n"
                    "backends:\n  - {backend_id: a, backend_type: kafka, capacity: *d}\n"
                    "  - {backend_id: b, backend_type: kafka, capacity: *d}\n")
    assert errors_of(path) == [(f"{path}:1:11 $.defaults", "Unknown field `defaults`")]
    path.write_text("- &a {backend_id: a, backend_type: kafka, capacity: {max_write_rps: 10}}\n"
                    "- {backend_id: b, backend_type: kafka, capacity: {<<: {max_write_rps: 10}, max_read_rps: 5}}\n")
    registry = load_registry(path)
    assert registry["b"].capacity.max_write_rps == 10 and registry["b"].capacity.max_read_rps == 5


@pytest.mark.parametrize("text", [
    "[" * 5000 + "]" * 5000,
    "{a: " * 5000 + "1" + "}" * 5000,
    "".join("  " * i + "a:\n" for i in range(1200)) + "  " * 1200 + "b: 1\n",
    "- " * 5000 + "1\n",
    "backend_id: a\nbackend_type: kafka\nmetadata: " + "[" * 500 + "]" * 500 + "\n",
    "backend_id: a\nbackend_type: kafka\nmetadata:\n" + "".join("  " * (i + 1) + "a:\n" for i in range(200)),
])
def test_deep_yaml_nesting_fails_fast(tmp_path, text):
    path = tmp_path / "deep.yaml"
    path.write_text(text)
    [(location, message)] = errors_of(path)
    assert location == str(path)
    assert message.startswith(("Invalid YAML: exceeded maximum nesting depth", f"Nesting deeper than {MAX_DEPTH}"))


@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000, '{"a":' * 100_000 + "1" + "}" * 100_000])
def test_deep_json_nesting_fails_fast(tmp_path, text):
    path = tmp_path / "deep.json"
    path.write_text(text)
    assert errors_of(path) == [(str(path), "Invalid JSON: nested too deep")]


def test_moderately_deep_json_metadata(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text('[{"backend_id": "a", "backend_type": "kafka", "metadata": ' + '{"a":' * 200 + "1" + "}" * 200
                    + "}]")
    assert errors_of(path) == [(f"{path}:1:59 $[0].metadata",
                                f"Nesting deeper than {MAX_DEPTH} levels (or a value that contains itself)")]


def test_deep_python_input_and_cycles():
    nested: object = 1
    for _ in range(10_000):
        nested = [nested]
    assert errors_of([{**BASE, "regions": nested}]) == [("<input> $[0].regions[0]", "Expected `str`, got `array`")]
    deep: dict = {}
    node = deep
    for _ in range(10_000):
        node["a"] = {}
        node = node["a"]
    assert errors_of([{**BASE, "metadata": deep}]) == [
        ("<input> $[0].metadata", f"Nesting deeper than {MAX_DEPTH} levels (or a value that contains itself)")]
    cyclic: dict = {}
    cyclic["me"] = cyclic
    for options in ({}, {"allow_inline_secrets": True}, {"strict": False}):
        assert errors_of([{**BASE, "metadata": cyclic}], **options) == [
            ("<input> $[0].metadata", f"Nesting deeper than {MAX_DEPTH} levels (or a value that contains itself)")]
    loop: list = []
    loop.append(loop)
    assert errors_of(loop) == [("<input> $[0]", "Expected `object`, got `array`")]
    assert errors_of([{**BASE, "capabilities": loop}]) == [("<input> $[0].capabilities[0]",
                                                             "Expected `str | object`, got `array`")]


def test_huge_free_form_block_is_refused():
    big = {f"k{i}": i for i in range(loading.MAX_FREEFORM_NODES + 10)}
    assert errors_of([{**BASE, "metadata": big}]) == [
        ("<input> $[0].metadata", f"Expected at most {loading.MAX_FREEFORM_NODES:,} values in a free-form block")]


@pytest.mark.parametrize(("text", "message"), [
    ('[{"backend_id": "a", "backend_type": "kafka", "capacity": {"max_write_rps": 1e400}}]',
     "Expected a finite number >= 0, got a number too large for a float"),
    ('[{"backend_id": "a", "backend_type": "kafka", "capacity": {"max_write_rps": ' + "9" * 5000 + "}}]",
     "Expected a finite number >= 0, got a number too large for a float"),
])
def test_numbers_too_large_for_a_float_in_json(tmp_path, text, message):
    path = tmp_path / "big.json"
    path.write_text(text)
    assert errors_of(path) == [(f"{path}:1:77 $[0].capacity.max_write_rps", message)]


def test_numbers_too_large_in_yaml(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("backend_id: a\nbackend_type: kafka\ncapacity:\n  max_write_rps: " + "9" * 5000 +
                    "\n  max_read_rps: 1.0e+400\n  max_connections: .nan\n")
    assert errors_of(path) == [
        (f"{path}:4:18 $.capacity.max_write_rps", "Expected a finite number >= 0, got a number too large for a float"),
        (f"{path}:5:17 $.capacity.max_read_rps", "Expected a finite number, got `inf`"),
        (f"{path}:6:20 $.capacity.max_connections", "Expected a finite number, got `nan`"),
    ]


@pytest.mark.parametrize(("name", "content", "message"), [
    ("e.yaml", b"", "File is empty: expected backend registrations"),
    ("e.json", b"  \n", "File is empty: expected backend registrations"),
    ("c.yaml", b"# only a comment\n", "File holds no YAML documents"),
    ("n.yaml", b"backend_id: \xff\xfe\n", "File is not UTF-8 text (byte 12)"),
    ("n.json", b'[{"backend_id": "\xff"}]', "File is not UTF-8 text (byte 17)"),
    ("u.yaml", "backend_id: a\n".encode("utf-16"), "File is not UTF-8 text (byte 0)"),
    ("t.json", b'[{"backend_id": "a",', "Invalid JSON: Input data was truncated (line 1, column 21)"),
    ("s.yaml", b"backend_id: a\nbackend_type: kafka\n  bad: [1, 2\n",
     "Invalid YAML: mapping values are not allowed in this context (line 3, column 6)"),
    ("d.yaml", b"backend_id: a\nbackend_id: b\n", "Invalid YAML: found duplicate key `backend_id` (line 2, column 1)"),
    ("p.yaml", b"!!python/object:os.system\nbackend_id: a\n",
     "Invalid YAML: could not determine a constructor for the tag "
     "'tag:yaml.org,2002:python/object:os.system' (line 1, column 1)"),
])
def test_broken_files(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    assert errors_of(path) == [(str(path), message)]


def test_file_size_limit(tmp_path, monkeypatch):
    path = tmp_path / "big.yaml"
    path.write_text("backend_id: a\nbackend_type: kafka\n" + "# padding\n" * 100)
    monkeypatch.setattr(loading, "MAX_FILE_BYTES", 1000)
    assert errors_of(path) == [(str(path), f"File is {path.stat().st_size:,} bytes; the limit is 1,000")]
    json_path = tmp_path / "big.json"
    json_path.write_bytes(orjson.dumps([BASE] * 40))
    assert errors_of(json_path) == [(str(json_path), f"File is {json_path.stat().st_size:,} bytes; the limit is 1,000")]


def test_gc_state_is_restored_on_success_and_failure():
    assert gc.isenabled()
    load_registry([BASE])
    assert gc.isenabled()
    with pytest.raises(RegistryError):
        load_registry([{"backend_id": 1}])
    assert gc.isenabled()
    gc.disable()
    try:
        load_registry([BASE])
        assert not gc.isenabled()
    finally:
        gc.enable()


# --- files agree with the dict path ------------------------------------------------------------------

def test_json_path_equals_dict_path(tmp_path):
    docs = generate_registry(300, seed=7)
    path = tmp_path / "r.json"
    path.write_bytes(orjson.dumps(docs))
    wrapped = tmp_path / "w.json"
    wrapped.write_bytes(orjson.dumps({"backends": docs}))
    from_dicts = load_registrations(docs)
    assert load_registrations(path) == from_dicts
    assert load_registrations(wrapped) == from_dicts


def test_json_errors_say_where_in_the_file(tmp_path):
    docs = generate_registry(20, seed=7)
    docs[5] = dict(docs[5], capacity={"max_write_rps": -1})
    path = tmp_path / "r.json"
    text = orjson.dumps(docs).decode()
    path.write_text(text)
    column = text.index('"max_write_rps":-1') + len('"max_write_rps":') + 1
    assert errors_of(path) == [(f"{path}:1:{column} $[5].capacity.max_write_rps",
                                "Expected a finite number >= 0, got `-1`")]


def test_yaml_path_equals_dict_path(tmp_path):
    docs = generate_registry(200, seed=11)
    path = tmp_path / "r.yaml"
    path.write_text(yaml.dump(docs, Dumper=yaml.CSafeDumper))  # shared blocks become anchors
    assert "&id" in path.read_text()
    assert load_registrations(path) == load_registrations(docs)


TRICKY_YAML = [
    "a: 0x1F\nb: 0o17\nc: 1_000\nd: 1:30\ne: -.inf\nf: .NaN\ng: ~\nh: yes\ni: Off\nj: 2025-01-02\n"
    "k: 2025-11-16T10:30:00Z\nl: 2025-11-16 10:30:00.5+02:00\nm: '1'\nn: \"x\\ty\"\no: !!str 5\np: 1e3\nq: 1.5e3\n",
    "base: &b {x: 1, y: [1, 2]}\nmerged: {<<: *b, y: 3}\nlist: [*b, *b]\nmulti: {<<: [*b, {z: 9}]}\n",
    "set: !!set {a, b}\nomap: !!omap [a: 1, b: 2]\npairs: !!pairs [a: 1, a: 2]\nbin: !!binary aGVsbG8=\n",
    "? complex\n: value\n1: int key\n2.5: float key\nnull: null key\nfalse: bool key\n",
    "- [1, [2, [3, {a: [4]}]]]\n- {}\n- []\n- ''\n- |\n  block\n  text\n- >\n  folded\n  text\n",
    "--- 1\n--- [a]\n--- {a: b}\n...\n",
    "a: &x 1\nb: *x\nc: &y [*x, *x]\nd: [*y, *y]\n",
]


@pytest.mark.parametrize("text", TRICKY_YAML)
def test_yaml_builder_matches_pyyaml(tmp_path, text):
    path = tmp_path / "t.yaml"
    path.write_text(text)
    ours = [doc for _, doc in read_file_documents(path)]
    theirs = [d for d in yaml.load_all(text, Loader=yaml.SafeLoader) if d is not None]
    assert ours == theirs


def test_yaml_builder_shares_aliased_objects_like_pyyaml(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("a: &x [1, 2]\nb: *x\n")
    [(_, doc)] = read_file_documents(path)
    assert doc["a"] is doc["b"]


def test_a_list_of_paths_loads_as_one_registry_with_every_problem(tmp_path):
    from pathlib import Path

    (tmp_path / "a.yaml").write_text("backend_id: x\nbackend_type: kafka\n")
    (tmp_path / "b.yaml").write_text("backend_id: x\nbackend_type: nats\n")
    (tmp_path / "c.yaml").write_text("backend_id: y\nbackend_type: redis\n")
    assert load_registry([tmp_path / "a.yaml", tmp_path / "c.yaml"]).backend_ids == ["x", "y"]
    with pytest.raises(RegistryError) as info:
        load_registry([tmp_path / "a.yaml", tmp_path / "b.yaml", Path(tmp_path / "missing.yaml")])
    assert info.value.errors == [  # in document order
        (f"{tmp_path / 'b.yaml'}:1:13 $.backend_id",
         f"Duplicate backend_id `x`, first defined at {tmp_path / 'a.yaml'}:1:13 $.backend_id"),
        (f"{tmp_path / 'missing.yaml'}", "No such file or directory"),
    ]
