"""Issue 12: hostile files, snapshots, secrets, memory and output.

Each class of defect is pinned by several cases: non-regular files, memory
that grew with the vocabulary squared, trusted snapshots, secrets echoed or
stored, lenient parsers, lenient tables, unchecked arguments, and outputs
that replaced what they should write through or printed control characters
raw. Every test stays well under 1 GiB and 5 s.
"""

from __future__ import annotations

import io
import json
import os
import stat
import sys
import threading
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import orjson
import polars as pl
import pytest

from prism_match import MatchPolicy, Registry, RegistryError, load_registry, load_snapshot
from prism_match import compiled, snapshot
from prism_match.cli import main
from prism_match.compiled import set_bits, bits_from_rows
from prism_match.redact import MASK, REMOVED, is_secret_field, printable
from prism_match.units import parse_duration, parse_size

B = {"backend_id": "a", "backend_type": "kafka"}
SECRET = "hunter2-never-shown"


def errors_of(source, **options) -> list[tuple[str, str]]:
    with pytest.raises(RegistryError) as info:
        load_registry(source, **options)
    text = str(info.value) + repr(info.value)
    assert SECRET not in text
    return info.value.errors


def finishes(call, seconds: float = 5.0):
    """``call()``'s result or exception, asserting it returns in time (a
    blocked open would hang the suite otherwise: the thread is a daemon)."""
    out: dict = {}

    def run():
        try:
            out["value"] = call()
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            out["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "blocked"
    if "error" in out:
        raise out["error"]
    return out.get("value")


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    old = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        code = main(list(argv))
    finally:
        sys.stdout, sys.stderr = old
    return code, out.getvalue(), err.getvalue()


# --- non-regular files are refused before they are opened for reading ---------------------------

@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "f.yaml"
    os.mkfifo(path)
    return path


def test_a_fifo_registry_is_refused_not_waited_on(fifo):
    with pytest.raises(RegistryError) as info:
        finishes(lambda: load_registry(fifo))
    assert info.value.errors == [(str(fifo), "Expected a regular file, got a FIFO (named pipe)")]


def test_a_fifo_in_a_registry_directory_is_reported_like_any_bad_file(tmp_path):
    (tmp_path / "a.yaml").write_text("backend_id: a\nbackend_type: kafka\n")
    os.mkfifo(tmp_path / "b.yaml")
    errors = finishes(lambda: errors_of(tmp_path))
    assert errors == [(f"{tmp_path}/b.yaml", "Expected a regular file, got a FIFO (named pipe)")]


def test_a_fifo_or_device_given_to_the_cli_or_as_a_snapshot_is_refused(fifo, tmp_path):
    code, _, err = finishes(lambda: run_cli("validate", str(fifo)))
    assert code == 1 and "Expected a regular file, got a FIFO (named pipe)" in err
    snap = tmp_path / "s.npz"
    os.mkfifo(snap)
    with pytest.raises(RegistryError, match=r"^Expected a regular file, got a FIFO \(named pipe\) - at "):
        finishes(lambda: load_snapshot(snap))
    with pytest.raises(RegistryError, match=r"^Expected a regular file, got a character device - at /dev/null$"):
        load_registry("/dev/null")


# --- memory proportional to what is declared; limits are RegistryErrors ------------------------------

def _peak(call) -> int:
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_wide_vocabulary_compiles_in_memory_proportional_to_it():
    # 4,000 backends with a distinct capability each: 8,000 feature tokens.
    # The old dense build took 8,000 x 65,536 booleans (500 MB) for the
    # transposed bits alone; the masks themselves are 4 MB each.
    docs = [{"backend_id": f"b{i}", "backend_type": "kafka", "capabilities": [f"c{i}"]} for i in range(4000)]
    peak = _peak(lambda: load_registry(docs))
    assert peak < 60 * 2**20
    registry = load_registry(docs)
    assert registry.match({"slot_name": "s", "capabilities": ["c3999"]})[0].backend_id == "b3999"


def test_one_backend_with_many_names_is_refused_where_it_stands():
    errors = errors_of([{**B, "capabilities": [f"c{i}" for i in range(5000)], "regions": ["r"] * 1100}])
    assert errors == [("<input> $[0].capabilities", "Expected at most 1,024 capabilities in one backend, got 5,000"),
                      ("<input> $[0].regions", "Expected at most 1,024 regions in one backend, got 1,100")]


def test_a_hand_built_registry_past_the_vocabulary_limit_is_a_registry_error(monkeypatch):
    monkeypatch.setattr(compiled, "MAX_VOCABULARY", 100)
    docs = [{"backend_id": f"b{i}", "backend_type": "kafka", "capabilities": [f"c{i}"]} for i in range(60)]
    with pytest.raises(RegistryError, match=r"^Expected at most 100 distinct capability and interface names "
                                            r"\(each name and name@version\), got 120 - at registry$"):
        load_registry(docs)


def test_a_bit_matrix_past_its_byte_limit_is_a_registry_error(monkeypatch):
    monkeypatch.setattr(compiled, "MAX_MASK_BYTES", 1000)
    docs = [{"backend_id": f"b{i}", "backend_type": "kafka", "regions": [f"r{i % 100}"]} for i in range(200)]
    with pytest.raises(RegistryError, match=r"^Expected bit masks of at most 1,000 bytes, got 3,200 "
                                            r"\(200 backends × 100 distinct regions\) - at registry$"):
        load_registry(docs)
    load_registry(docs[:62])  # 62 x 2 words x 8 bytes = 992


@pytest.mark.parametrize("rows, width, pairs", [(5, 3, 0), (1, 2000, 40), (3000, 2, 9000), (70000, 1, 70000),
                                                (100, 9, 5000)])
def test_sparse_and_dense_bit_builds_agree_with_a_plain_loop(rows, width, pairs):
    rng = np.random.default_rng(rows + width)
    r = np.sort(rng.integers(0, rows, pairs)).astype(np.int64)
    b = rng.integers(0, width * 64, pairs).astype(np.int64)
    want = np.zeros((rows, width), dtype=np.uint64)
    for i, j in zip(r.tolist(), b.tolist()):
        want[i, j >> 6] |= np.uint64(1) << np.uint64(j & 63)
    assert np.array_equal(set_bits((rows, width), r, b), want)
    # The transposed build: backends along the bits.
    n_tokens = width * 64
    transposed = bits_from_rows(rows, n_tokens, r, b)
    back = np.zeros((max(n_tokens, 1), (rows + 63) // 64), dtype=np.uint64)
    for i, j in zip(r.tolist(), b.tolist()):
        back[j, i >> 6] |= np.uint64(1) << np.uint64(i & 63)
    assert np.array_equal(transposed, back)


# --- snapshots are read as untrusted input ---------------------------------------------------

@pytest.fixture(scope="module")
def small_registry():
    docs = [{"backend_id": f"kafka-{i}", "backend_type": "kafka", "capabilities":
             [{"name": "get", "performance": {"latency": {"p99_ms": 5.0 + i}}}, "scan"],
             "capacity": {"max_write_rps": 1000.0 * (i + 1), "max_storage": "1TB"},
             "health": {"status": "healthy", "uptime_percent_24h": 99.0}, "regions": ["us-east-1"]}
            for i in range(3)]
    docs.append({"backend_id": "postgres-0", "backend_type": "postgres", "interfaces": ["KeyValueInterface"]})
    return load_registry(docs)


def rewritten(registry, path: Path, *, checksum: bool = True, **changes) -> Path:
    """``registry`` saved to ``path`` with members changed (None removes one)
    and, with ``checksum``, its manifest made to match again (a tampering
    that knows the format; the value checks must catch it)."""
    registry.save(path)
    with np.load(path) as data:
        arrays = {key: data[key] for key in data.files}
    for key, value in changes.items():
        if value is None:
            del arrays[key]
        else:
            arrays[key] = value
    if checksum:
        arrays.pop("manifest")
        with open(path, "wb") as handle:
            snapshot._write_archive(handle, arrays)
    else:
        np.savez(path, **arrays)
    return path


def damaged(path: Path) -> str:
    with pytest.raises(RegistryError) as info:
        load_snapshot(path)
    [(where, message)] = info.value.errors
    assert where == str(path)
    return message


def test_unknown_members_are_refused_unread(small_registry, tmp_path):
    path = tmp_path / "r.npz"
    small_registry.save(path)
    with zipfile.ZipFile(path, "a") as archive:  # a member never read (imagine 2.5 GB of zeros)
        archive.writestr("unused.npy", b"\x93NUMPY" + b"\0" * 100)
    assert damaged(path) == "Snapshot is damaged: unexpected member `unused`"


def _npy_header(shape: tuple, dtype: str = "<f8") -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def test_a_header_claiming_a_huge_array_is_refused_before_reading(small_registry, tmp_path):
    path = tmp_path / "r.npz"
    small_registry.save(path)
    with np.load(path) as data:
        arrays = {key: data[key] for key in data.files}
    arrays.pop("col.max_write_rps")
    np.savez(path, **arrays)
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("col.max_write_rps.npy", _npy_header((10**12,)) + b"\0" * 64)
    assert damaged(path) == "Snapshot is damaged: column `max_write_rps` is float64[1000000000000], expected float64[4]"
    # Right shape, but less data than the header says.
    arrays = {k: v for k, v in arrays.items()}
    np.savez(path, **arrays)
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("col.max_write_rps.npy", _npy_header((4,)) + b"\0" * 8)
    assert damaged(path) == ("Snapshot is damaged: member `col.max_write_rps` holds 8 bytes of data, "
                             "its header says 32")


def test_compressed_members_are_refused(small_registry, tmp_path):
    path = tmp_path / "r.npz"
    small_registry.save(path)
    with np.load(path) as data:
        arrays = {key: data[key] for key in data.files}
    np.savez_compressed(path, **arrays)
    assert damaged(path).startswith("Snapshot is damaged: member `format` is compressed")


@pytest.mark.parametrize("column, value, message", [
    ("col.uptime_percent_24h", lambda a: np.full(4, 500.0), "column `uptime_percent_24h` holds `500.0` at row 0, out of range"),
    ("col.max_write_rps", lambda a: np.array([-1.0, 1, 2, 3]), "column `max_write_rps` holds `-1.0` at row 0, out of range"),
    ("col.max_read_rps", lambda a: np.array([0, np.nan, 0, 0.0]), "column `max_read_rps` holds `nan` at row 1, out of range"),
    ("col.feature_bits", lambda a: np.zeros_like(a), "column `feature_bits` does not match `feature_rows`"),
    ("col.cost_score", lambda a: np.full(4, 0.5), "column `cost_score` does not follow from `cost_per_1k_writes`"),
    ("ids.off", lambda a: a[::-1].copy(), "member `ids.off` is out of range (offsets out of order)"),
    ("ids.buf", lambda a: np.frombuffer(a.tobytes().replace(b"kafka-1", b"kafka\x1b1"), np.uint8),
     "member `ids.buf` holds an empty name or one with a control character (`'kafka\\x1b1'`)"),
    ("vocab.features.buf", lambda a: np.frombuffer(a.tobytes().replace(b"c:get", b"x:get"), np.uint8),
     "member `vocab.features.buf` holds an unknown feature token (`'x:get'`)"),
    ("col.health", lambda a: np.full_like(a, 7), "column `health` is out of range"),
    ("col.lat_vtoken", lambda a: np.zeros_like(a), "column `lat_vtoken` names `'c:get'`, not a capability version"),
    ("col.lat_token", lambda a: np.full_like(a, 2), "column `lat_vtoken` names another capability than `lat_token`"),
    ("col.lat_token", lambda a: np.full_like(a, 1), "column `lat_token` names `'c:get\\x1fv1'`, not a capability"),
])
def test_tampered_values_are_refused_naming_what_is_wrong(small_registry, tmp_path, column, value, message):
    path = tmp_path / "r.npz"
    small_registry.save(path)
    with np.load(path) as data:
        original = data[column]
    assert damaged(rewritten(small_registry, path, **{column: value(original)})) == f"Snapshot is damaged: {message}"


def test_a_change_the_value_checks_allow_is_caught_by_the_checksum(small_registry, tmp_path):
    path = tmp_path / "r.npz"
    small_registry.save(path)
    with np.load(path) as data:
        rps = data["col.max_write_rps"].copy()
    rps[0] = 2.0  # in range: only the checksum knows
    assert damaged(rewritten(small_registry, path, checksum=False, **{"col.max_write_rps": rps})) == (
        "Snapshot is damaged: its checksum does not match its content (changed since it was saved)")


def test_a_flipped_byte_is_caught_by_the_members_crc(small_registry, tmp_path):
    path = tmp_path / "r.npz"
    small_registry.save(path)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("col.max_write_rps.npy")
    at = info.header_offset + 30 + len(info.filename) + len(info.extra) + info.file_size - 3
    data[at] ^= 0x40
    path.write_bytes(bytes(data))
    assert damaged(path).startswith("Snapshot is damaged: Bad CRC-32 for file 'col.max_write_rps.npy'")


def test_swapped_records_never_answer_for_another_backend(small_registry, tmp_path):
    path = tmp_path / "r.npz"
    small_registry.save(path)
    with np.load(path) as data:
        buf, off = data["reg.buf"].tobytes(), data["reg.off"]
    records = [buf[a:b] for a, b in zip(off[:-1], off[1:])]
    records[0], records[3] = records[3], records[0]
    new_off = np.concatenate([[0], np.cumsum([len(r) for r in records])]).astype(np.int64)
    loaded = load_snapshot(rewritten(small_registry, path, **{
        "reg.buf": np.frombuffer(b"".join(records), np.uint8), "reg.off": new_off}))
    with pytest.raises(RegistryError, match=r"^Snapshot is damaged: record 0 is not the registration of its row "
                                            r"\(`kafka-0`\) - at "):
        loaded["kafka-0"]
    assert loaded["kafka-1"].backend_id == "kafka-1"


def test_a_registry_saved_and_loaded_answers_the_same(small_registry, tmp_path):
    path = tmp_path / "r.npz"
    small_registry.save(path)
    loaded = load_snapshot(path)
    slot = {"slot_name": "s", "capabilities": ["get"]}
    assert [(m.backend_id, m.score) for m in loaded.match(slot, 3)] == [
        (m.backend_id, m.score) for m in small_registry.match(slot, 3)]
    assert loaded["postgres-0"] == small_registry["postgres-0"]


# --- secrets ----------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    f"password: !!int {SECRET}", f"password: !!float {SECRET}", f"password: !!bool {SECRET}",
    f"password: !!timestamp {SECRET}", f"token: !!int {SECRET}",
])
def test_a_yaml_tag_on_a_secret_never_echoes_it(tmp_path, text):
    path = tmp_path / "r.yaml"
    path.write_text(f"backend_id: a\nbackend_type: kafka\nconnection:\n  auth:\n    type: username_password\n"
                    f"    {text}\n")
    [(where, message)] = errors_of(path)
    assert where == str(path) and message.startswith("Invalid YAML: not a valid ")
    assert message.endswith(f"(the value is not shown) (line 6, column {text.index('!') + 5})")
    code, out, err = run_cli("validate", str(path), "--format", "json")
    assert SECRET not in out + err


@pytest.mark.parametrize("key", [" password", "Password ", "PASSWD", "api_key", "API-Key", "apiKey", "apikey",
                                 "client_secret", "clientSecret", "access_token", "db_password", "db-password",
                                 "aws_secret_access_key", "private_key", "refresh_token"])
def test_secret_keys_are_found_whatever_their_spelling(key):
    assert is_secret_field(key)
    [(where, message)] = errors_of([{**B, "metadata": {"svc": {key: SECRET}}}])
    assert message.startswith(f"Inline secret in `{key}`: expected a reference")


@pytest.mark.parametrize("key", ["key_path", "keys", "partition_key", "sort_key", "tokens", "owner", "passwords_rotated_at"])
def test_names_that_only_look_secret_are_not(key):
    assert not is_secret_field(key)
    assert load_registry([{**B, "metadata": {key: "value"}}])


def test_a_password_inside_a_url_is_a_secret():
    errors = errors_of([{**B, "connection": {"endpoint": f"postgres://app:{SECRET}@db:5432/x"}},
                        {**B, "backend_id": "b", "metadata": {"dsn": f"redis://:{SECRET}@cache:6379"}}])
    assert errors == [
        ("<input> $[0].connection.endpoint", "Inline secret in the password of the URL in `endpoint`: expected a "
         "reference `${SECRET:path}` (the value is not shown; pass allow_inline_secrets=True to accept it)"),
        ("<input> $[1].metadata.dsn", "Inline secret in the password of the URL in `dsn`: expected a reference "
         "`${SECRET:path}` (the value is not shown; pass allow_inline_secrets=True to accept it)")]
    fine = load_registry([{**B, "connection": {"endpoint": "postgres://app:${SECRET:db/pw}@db:5432/x"}},
                          {**B, "backend_id": "b", "connection": {"endpoint": "postgres://app@db:5432/x"}}])
    assert "${SECRET:db/pw}" in repr(fine["a"])
    shown = load_registry([{**B, "connection": {"endpoint": f"postgres://app:{SECRET}@db/x"}}],
                          allow_inline_secrets=True)
    assert SECRET not in repr(shown["a"]) and f"postgres://app:{MASK}@db/x" in repr(shown["a"])


def test_secrets_never_go_into_a_snapshot(tmp_path):
    registry = load_registry([{**B, "connection": {"endpoint": f"postgres://u:{SECRET}@h/x",
                                                   "auth": {"type": "username_password", "password": SECRET}},
                               "metadata": {"API-Key": SECRET, "ref": {"token": "${SECRET:t}"}}}],
                             allow_inline_secrets=True)
    path = tmp_path / "r.npz"
    registry.save(path)
    assert SECRET.encode() not in path.read_bytes()
    loaded = load_snapshot(path)["a"]
    assert loaded.connection.auth.password == REMOVED
    assert loaded.connection.endpoint == f"postgres://u:{REMOVED}@h/x"
    assert loaded.metadata == {"API-Key": REMOVED, "ref": {"token": "${SECRET:t}"}}
    assert REMOVED in repr(loaded) and SECRET not in repr(loaded)


# --- parsers ------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, where", [
    ('{"backends": [{"backend_id": "a", "backend_type": "kafka"}], "backends": []}', "(line 1, column 62)"),
    ('[{"backend_id": "a", "backend_type": "kafka",\n  "capacity": {"max_write_rps": 1, "max_write_rps": 2}}]',
     "(line 2, column 36)"),
    ('[{"backend_id": "a", "backend_type": "kafka", "metadata": {"k": 1, "k": 2}}]', "(line 1, column 68)"),
])
def test_json_duplicate_keys_are_refused_where_they_repeat(tmp_path, text, where):
    path = tmp_path / "r.json"
    path.write_text(text)
    key = "backends" if "backends" in text else "max_write_rps" if "capacity" in text else "k"
    assert errors_of(path) == [(str(path), f"Invalid JSON: found duplicate key `{key}` {where}")]


@pytest.mark.parametrize("value", ["!!bool maybe", "!!timestamp soon", "!!int x", "!!float x", "!!set [1]",
                                   "!!omap {a: 1}", "!!binary [1]", "!foo x", "!!python/object:os.system x"])
@pytest.mark.parametrize("field", ["display_name", "backend_id"])
def test_every_yaml_tag_converts_or_is_a_located_error(tmp_path, value, field):
    path = tmp_path / "r.yaml"
    head = "backend_id: a\n" if field != "backend_id" else ""
    path.write_text(f"{head}backend_type: kafka\n{field}: {value}\n")
    [(where, message)] = errors_of(path)
    assert where == str(path) and message.startswith("Invalid YAML: ")
    assert message.endswith(f"(line {2 if field == 'backend_id' else 3}, column {len(field) + 3})")


@pytest.mark.parametrize("text", ["١٠TB", "１０TB", "10ТB", "۱۰ms"])
def test_units_and_digits_are_ascii(text):
    with pytest.raises(ValueError):
        parse_size(text)
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize("text, unit", [("1h1h", "h"), ("1m30s1m", "m"), ("5ms5ms", "ms")])
def test_a_repeated_unit_is_an_error(text, unit):
    with pytest.raises(ValueError, match=rf"^Expected each unit at most once in a duration, got `{unit}` twice"):
        parse_duration(text)
    assert parse_duration("1h30m5s") == 5405.0


def test_a_nul_byte_is_located(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_bytes(b"backend_id: a\nbackend_type: kaf\0ka\n")
    assert errors_of(path) == [(str(path), "Invalid YAML: character `\\x00` is not allowed (line 2, column 18)")]
    path.write_bytes(b"backend_id: a\n\x07")
    assert errors_of(path) == [(str(path), "Invalid YAML: character `\\x07` is not allowed (line 2, column 1)")]


def test_every_problem_of_a_document_is_reported_in_one_pass():
    errors = errors_of([{**B, "capacity": {"max_write_rps": -1},
                         "connection": {"auth": {"type": "token", "token": SECRET}},
                         "metadata": {"password": SECRET}}])
    assert [where for where, _ in errors] == ["<input> $[0].capacity.max_write_rps",
                                              "<input> $[0].connection.auth.token", "<input> $[0].metadata.password"]


def test_errors_in_files_say_line_and_column(tmp_path):
    yaml_file = tmp_path / "r.yaml"
    yaml_file.write_text("backend_id: a\nbackend_type: kafka\ncapacity:\n  max_write_rps: -1\n"
                         "---\nbackend_id: b\nbackend_type: kafak\n")
    assert [where for where, _ in errors_of(yaml_file)] == [f"{yaml_file}#1:4:18 $.capacity.max_write_rps",
                                                            f"{yaml_file}#2:7:15 $.backend_type"]
    json_file = tmp_path / "r.json"
    third = '  {"backend_id": "b", "backend_type": "kafka", "capacity": {"max_read_rps": "x"}}]}'
    json_file.write_text('{"backends": [\n  {"backend_id": "a", "backend_type": "kafka"},\n' + third + "\n")
    column = third.index('"x"') + 1
    assert [where for where, _ in errors_of(json_file)] == [f"{json_file}:3:{column} $.backends[1].capacity.max_read_rps"]


# --- from_polars: a table is checked as a document is -------------------------------------------

FRAME = {"backend_id": ["a", "b"], "backend_type": ["kafka", "redis"]}


@pytest.mark.parametrize("columns, expected", [
    ({"max_write_rsp": [1.0, 2.0]}, [("frame column `max_write_rsp`", "Unknown column; did you mean `max_write_rps`?")]),
    ({"backend_id": ["a", "b\x1b[2J"]},
     [("frame row 1 column `backend_id`", 'Expected a name without control characters, got `"b\\x1b[2J"`')]),
    ({"capabilities": [["get"], ["get\x1fv2"]]},
     [("frame row 1 column `capabilities`", 'Expected a name without control characters, got `"get\\x1fv2"`')]),
    ({"regions": [["us"], ["us", None]]},
     [("frame row 1 column `regions`", "Expected names without nulls, got a null inside the list")]),
    ({"backend_id": [["a"], ["b"]]}, [("frame column `backend_id`", "Expected text (`str`), got `List(String)`")]),
    ({"backend_type": [b"kafka", b"redis"]}, [("frame column `backend_type`", "Expected text (`str`), got `Binary`")]),
    ({"capabilities": [b"x", b"y"]},
     [("frame column `capabilities`", "Expected a list of names (`list[str]`), got `Binary`")]),
])
def test_from_polars_checks_a_table_as_a_document(columns, expected):
    with pytest.raises(RegistryError) as info:
        Registry.from_polars(pl.DataFrame({**FRAME, **columns}))
    assert info.value.errors == expected


def test_from_polars_refuses_nulls_inside_latencies():
    dtype = pl.List(pl.Struct({"capability": pl.String, "p99_ms": pl.Float64}))
    for entries in ([{"capability": "get", "p99_ms": None}], [{"capability": None, "p99_ms": 3.0}], [None]):
        frame = pl.DataFrame({**FRAME, "capabilities": [["get"], []], "capability_p99_ms": [entries, []]},
                             schema_overrides={"capability_p99_ms": dtype})
        with pytest.raises(RegistryError) as info:
            Registry.from_polars(frame)
        assert info.value.errors == [("frame row 0 column `capability_p99_ms`",
                                      "Expected `{capability, p99_ms}` entries without nulls, got a null")]


# --- arguments ----------------------------------------------------------------------------------

def test_clear_errors_for_paths_that_are_not_paths(small_registry):
    cases = [(lambda: load_snapshot(None), "Expected a snapshot path, its bytes or a binary file, got `NoneType` - at load_snapshot"),
             (lambda: load_snapshot(3), "Expected a snapshot path, its bytes or a binary file, got `int` - at load_snapshot"),
             (lambda: small_registry.save(None), "Expected a file path, got `NoneType` - at Registry.save"),
             (lambda: small_registry.save(""), "Expected a file path, got an empty string - at Registry.save"),
             (lambda: small_registry.save("x\0y"), "Expected a file path, got one with a NUL character - at x\\x00y")]
    for call, message in cases:
        with pytest.raises(RegistryError) as info:
            call()
        assert str(info.value) == message


def test_one_check_for_k_and_threads(small_registry):
    slot = {"slot_name": "s", "capabilities": ["get"]}
    assert [m.backend_id for m in small_registry.match(slot, np.int64(2))] == ["kafka-0", "kafka-1"]
    assert small_registry.match_many([slot], k=np.int64(2), threads=np.int32(1)).height == 2
    for call, message in [(lambda: small_registry.match_many([slot], k=True), "Expected `k` >= 1, got `True` - at match_many"),
                          (lambda: small_registry.match(slot, 2.0), "Expected `k` >= 1, got `2.0` - at match"),
                          (lambda: small_registry.match_many([slot], threads=True),
                           "Expected `threads` >= 1, got `True` - at threads"),
                          (lambda: small_registry.match_many([slot], threads=np.int64(0)),
                           "Expected `threads` >= 1, got `0` - at threads")]:
        with pytest.raises(RegistryError) as info:
            call()
        assert str(info.value) == message


def test_policy_weights_are_bounded_so_scores_stay_finite(small_registry):
    with pytest.raises(RegistryError, match=r"^Expected a number in \[0, 1,000,000\], got `1e\+300` - at policy \$\.w_perf$"):
        MatchPolicy(w_perf=1e300)
    with pytest.raises(RegistryError, match=r"perf_cap"):
        MatchPolicy(perf_cap=float("inf"))
    top = MatchPolicy(w_perf=1e6, w_cost=1e6, w_avail=1e6, w_region=1e6, perf_cap=1e6)
    small_registry.policy = top
    try:
        scores = [m.score for m in small_registry.match({"slot_name": "s"}, 4)]
    finally:
        small_registry.policy = MatchPolicy()
    assert scores and all(np.isfinite(scores))


# --- output -------------------------------------------------------------------------------------

def test_saving_through_a_symlink_keeps_the_link_and_the_targets_mode(small_registry, tmp_path):
    target = tmp_path / "real.npz"
    target.write_bytes(b"old")
    target.chmod(0o640)
    link = tmp_path / "link.npz"
    link.symlink_to(target)
    small_registry.save(link)
    assert link.is_symlink() and stat.S_IMODE(target.stat().st_mode) == 0o640
    assert load_snapshot(link).backend_ids == small_registry.backend_ids


def test_a_replaced_file_keeps_its_mode_and_a_new_one_gets_the_umasks(small_registry, tmp_path):
    old = tmp_path / "old.npz"
    old.write_bytes(b"x")
    old.chmod(0o604)
    small_registry.save(old)
    assert stat.S_IMODE(old.stat().st_mode) == 0o604
    umask = os.umask(0o027)
    try:
        small_registry.save(tmp_path / "new.npz")
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "new.npz").stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.npz", "old.npz"]


def test_fifos_and_devices_are_written_through(small_registry, tmp_path):
    pipe = tmp_path / "out.npz"
    os.mkfifo(pipe)
    received = {}
    reader = threading.Thread(target=lambda: received.setdefault("data", pipe.read_bytes()), daemon=True)
    reader.start()
    finishes(lambda: small_registry.save(pipe))
    reader.join(5)
    assert stat.S_ISFIFO(os.lstat(pipe).st_mode)
    assert load_snapshot(received["data"]).backend_ids == small_registry.backend_ids
    small_registry.save("/dev/null")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_unwritable_outputs_are_one_line_and_exit_one(tmp_path):
    registry = tmp_path / "r.yaml"
    registry.write_text("backend_id: a\nbackend_type: kafka\n")
    slots = tmp_path / "s.yaml"
    slots.write_text("slot_name: s\n")
    for argv in (["compile", str(registry), "-o", "/dev/full"],
                 ["match", str(registry), str(slots), "--format", "parquet", "-o", "/dev/full"],
                 ["match", str(registry), str(slots), "--format", "json", "-o", "/dev/full"],
                 ["match", str(registry), str(slots), "--format", "csv", "-o", str(tmp_path)],
                 ["compile", str(registry), "-o", str(tmp_path / "no" / "dir" / "x.npz")]):
        code, out, err = run_cli(*argv)
        assert code == 1, argv
        assert err.count("\n") == 1 and err.startswith("error: Cannot write file: "), err


BIDI = "kafka-\u202eevil\u202c-\x85x"


@pytest.mark.parametrize("fmt", ["table", "csv", "json", "ndjson"])
def test_c1_and_bidi_characters_never_reach_the_output_raw(tmp_path, fmt):
    registry = tmp_path / "r.json"
    registry.write_bytes(orjson.dumps([{"backend_id": BIDI, "backend_type": "kafka", "regions": ["r\u2066"]}]))
    slots = tmp_path / "s.yaml"
    slots.write_text("slot_name: s\n")
    out_file = tmp_path / f"out.{fmt}"
    for output in (None, out_file):
        code, out, _ = run_cli("match", str(registry), str(slots), "--format", fmt,
                               *(["-o", str(output)] if output else []))
        text = out if output is None else out_file.read_text()
        assert code == 0 and text
        assert not any(ch in text for ch in "\u202e\u202c\u2066\x85"), text
        assert "\\u202e" in text
        if fmt == "json":
            assert json.loads(text)["slots"][0]["matches"][0]["backend_id"] == BIDI  # JSON's own escapes: lossless
    assert printable("a\u202eb\x85\x1b") == "a\\u202eb\\u0085\\x1b"


def test_a_terminal_table_is_escaped_but_keeps_its_colours():
    from prism_match.render import SafeConsole
    from rich.text import Text

    class Tty(io.StringIO):
        def isatty(self):
            return True

    stream = Tty()
    console = SafeConsole(file=stream, force_terminal=True, color_system="standard")
    console.print(Text(BIDI, style="bold red"))
    console.file.write("plain \x1b[2J\n")
    text = stream.getvalue()
    assert "\x1b[1;31m" in text and "\\u202e" in text and "\u202e" not in text
    assert "plain \\x1b[2J" in text
