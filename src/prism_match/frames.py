"""Compiled columns ↔ polars: ``Registry.to_polars`` and ``Registry.from_polars``.

Both directions are vectorized (no Python object per backend), so a registry
of a million backends goes through them in about a second. The table is one
row per backend: ``backend_id``, ``backend_type``, ``health_status``,
``consistency``, list columns ``capabilities`` / ``interfaces``
(``name@version``), ``regions``, ``compliance``, ``capability_p99_ms`` (list
of ``{capability, p99_ms}``: the capabilities that state a p99),
``capability_performance`` (list of ``{capability, p50_ms, p95_ms, p99_ms,
p999_ms, max_write_rps, max_read_rps, supports_batch, max_batch_size,
max_concurrent_operations}``, null where not stated: every capability that
states any of it; ``from_polars`` reads it in place of ``capability_p99_ms``
when both are given), and the float columns of compiled.FLOAT_COLUMNS
(missing data as null). ``from_polars`` accepts that table or a subset of it
(only ``backend_id`` and ``backend_type`` are required), checked as strictly
as a document and reported in the same grammar (``frame row 3 column
`capabilities` ``): an unknown column is refused with a did-you-mean, text
columns must hold text, list columns lists of names without nulls, names no
control characters, and a backend at most ``MAX_NAMES_PER_BACKEND`` names
per list.
"""

from __future__ import annotations

import difflib

import numpy as np
import polars as pl

from ._types import CODE_DTYPE, SCORE_DTYPE
from .compiled import (
    BATCH_DTYPE, CAPABILITY_PERF, CONSISTENCY_CODE, FLOAT_COLUMNS, HEALTH_CODE, INPUT_FLOATS, MAX_NAMES_PER_BACKEND, MISSING, OPTIONAL_COLUMNS,
    RESERVED_COLUMNS, TYPE_CODE, UNKNOWN_CONSISTENCY, Columns, set_bits, assemble_columns, has_bit,
)
from .errors import RegistryError
from .schema import BACKEND_TYPES, CONSISTENCY_LEVELS, DEFAULT_VERSION, HEALTH_STATUSES
from .vocabulary import Vocabulary, is_versioned, shown, split_requirement, versioned

__all__ = ["columns_to_polars", "columns_from_polars"]

_NULLABLE = ("max_storage", "max_namespaces", "max_connections", "cost_per_1k_writes", "uptime_percent_24h")


def _set_pairs(bits: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) of every bit set in a uint64[R, W] bit matrix, columns
    below ``width``, row by row: (token, backend) for a transposed bitset,
    (backend, bit) for row-wise masks."""
    return np.nonzero(np.unpackbits(bits.view(np.uint8), axis=1, bitorder="little")[:, :width])


def _list_column(n: int, backend: np.ndarray, values: list[str], name: str) -> pl.Series:
    frame = pl.DataFrame({"row": backend.astype(np.int64), name: pl.Series(values, dtype=pl.String)})
    grouped = frame.sort("row", maintain_order=True).group_by("row", maintain_order=True).agg(pl.col(name))
    full = pl.DataFrame({"row": np.arange(n, dtype=np.int64)}).join(grouped, on="row", how="left")
    # Sorted, so the same registry gives the same table whatever its vocabulary order.
    return full[name].fill_null(pl.lit([], dtype=pl.List(pl.String))).list.sort()


def _name_rank(tokens: list[str]) -> np.ndarray:
    """int64[len(tokens)]: each token's position in sorted order."""
    rank = np.empty(len(tokens), dtype=np.int64)
    rank[np.argsort(np.array(tokens, dtype=object), kind="stable")] = np.arange(len(tokens))
    return rank


def columns_to_polars(c: Columns) -> pl.DataFrame:
    n = c.n
    token, backend = _set_pairs(c.feature_bits, n)
    tokens = c.features.tokens
    exact = np.array([is_versioned(t) for t in tokens], dtype=bool)
    is_cap = np.array([t.startswith("c:") for t in tokens], dtype=bool)
    keep = exact[token]
    backend, token = backend[keep], token[keep]
    # Items are listed by name, not by vocabulary position (which depends on
    # load order), so from_polars(to_polars()) gives back the same table.
    order = np.lexsort((_name_rank(tokens)[token], backend))
    backend, token = backend[order], token[order]
    names = np.array([shown(t) for t in tokens], dtype=object)
    cap_sel = is_cap[token]
    data: dict[str, object] = {
        "backend_id": pl.Series(c.backend_ids, dtype=pl.String),
        "backend_type": pl.Series(np.array(BACKEND_TYPES)[c.backend_type]),
        "health_status": pl.Series(np.array(HEALTH_STATUSES)[c.health]),
        "consistency": pl.Series(np.array([*CONSISTENCY_LEVELS, ""])[c.consistency]).replace("", None),
        "capabilities": _list_column(n, backend[cap_sel], names[token[cap_sel]].tolist(), "capabilities"),
        "interfaces": _list_column(n, backend[~cap_sel], names[token[~cap_sel]].tolist(), "interfaces"),
    }
    for vocab, rows, name in ((c.regions, c.region_rows, "regions"), (c.compliance, c.compliance_rows, "compliance")):
        b, t = _set_pairs(rows, len(vocab))
        by_name = np.lexsort((_name_rank(vocab.tokens)[t], b))
        b, t = b[by_name], t[by_name]
        data[name] = _list_column(n, b, [vocab.tokens[i] for i in t], name)
    owner = np.repeat(np.arange(n), np.diff(c.lat_indptr))
    stated = ~np.isnan(c.lat_p99_ms)  # an entry may state other things than p99
    lat = pl.DataFrame({"row": owner[stated].astype(np.int64),
                        "capability": pl.Series([shown(tokens[i]) for i in c.lat_vtoken[stated]], dtype=pl.String),
                        "p99_ms": c.lat_p99_ms[stated]})
    lat = lat.group_by("row", maintain_order=True).agg(pl.struct("capability", "p99_ms").alias("capability_p99_ms"))
    data["capability_p99_ms"] = pl.DataFrame({"row": np.arange(n, dtype=np.int64)}).join(
        lat, on="row", how="left")["capability_p99_ms"]
    data["capability_performance"] = _performance_column(c, n, owner, tokens)
    frame = pl.DataFrame(data)
    floats = {name: getattr(c, name).copy() for name in (*FLOAT_COLUMNS, *RESERVED_COLUMNS, *OPTIONAL_COLUMNS)}
    frame = frame.with_columns(**{k: pl.Series(v) for k, v in floats.items()})
    return frame.with_columns(
        pl.when(pl.col(k).is_nan() | pl.col(k).is_infinite()).then(None).otherwise(pl.col(k)).alias(k)
        for k in _NULLABLE)


# capability_performance's struct fields: name -> (entry column, polars dtype).
_PERF_FIELDS = {"p50_ms": ("lat_p50_ms", pl.Float64), "p95_ms": ("lat_p95_ms", pl.Float64),
                "p99_ms": ("lat_p99_ms", pl.Float64), "p999_ms": ("lat_p999_ms", pl.Float64),
                "max_write_rps": ("lat_max_write_rps", pl.Float64), "max_read_rps": ("lat_max_read_rps", pl.Float64),
                "supports_batch": ("lat_batch", pl.Boolean), "max_batch_size": ("lat_max_batch_size", pl.Int64),
                "max_concurrent_operations": ("lat_concurrency", pl.Int64)}


def _performance_column(c: Columns, n: int, owner: np.ndarray, tokens: list[str]) -> pl.Series:
    """Each row's capability entries as a list of structs, null where not stated."""
    fields: dict[str, pl.Series] = {}
    for key, (name, dtype) in _PERF_FIELDS.items():
        values = getattr(c, name)
        if name == "lat_batch":
            fields[key] = pl.Series(key, values == 1, dtype=pl.Boolean).set(pl.Series(values < 0), None)
        else:
            series = pl.Series(key, values, dtype=pl.Float64, nan_to_null=True)
            fields[key] = series.cast(dtype, strict=False) if dtype != pl.Float64 else series
    entries = pl.DataFrame({"row": owner.astype(np.int64),
                            "capability": pl.Series([shown(tokens[i]) for i in c.lat_vtoken], dtype=pl.String),
                            **fields})
    grouped = entries.group_by("row", maintain_order=True).agg(
        pl.struct("capability", *_PERF_FIELDS).alias("capability_performance"))
    return pl.DataFrame({"row": np.arange(n, dtype=np.int64)}).join(grouped, on="row", how="left")[
        "capability_performance"]


def _codes(frame: pl.DataFrame, column: str, mapping: dict[str, int], default: int | None,
           errors: list[tuple[str, str]]) -> np.ndarray:
    if column not in frame.columns:
        if default is None:
            errors.append((f"frame column `{column}`", "Required column is missing"))
            return np.zeros(frame.height, dtype=CODE_DTYPE)
        return np.full(frame.height, default, dtype=CODE_DTYPE)
    values = frame[column].cast(pl.String)
    codes = values.replace_strict(mapping, default=-1, return_dtype=pl.Int64)
    if default is not None:
        codes = codes.set(values.is_null(), default)
    bad = (codes < 0).arg_true()
    if len(bad):
        row = int(bad[0])
        errors.append((f"frame row {row} column `{column}`",
                       f"Expected one of {', '.join(f'`{v}`' for v in mapping)}, got `{str(values[row])[:40]}`"))
    return np.clip(codes.to_numpy(), 0, None).astype(CODE_DTYPE)


def _float_column(frame: pl.DataFrame, name: str, errors: list[tuple[str, str]]) -> np.ndarray:
    if name not in frame.columns:
        return np.full(frame.height, MISSING[name], dtype=SCORE_DTYPE)
    dtype = frame.schema[name]
    if not (dtype.is_numeric() or dtype == pl.Null):
        errors.append((f"frame column `{name}`", f"Expected numbers, got `{dtype}`"))
        return np.zeros(frame.height)
    try:
        series = frame[name].cast(pl.Float64)
    except pl.exceptions.PolarsError:
        errors.append((f"frame column `{name}`", f"Expected numbers, got `{frame[name].dtype}`"))
        return np.zeros(frame.height)
    values = series.fill_null(MISSING[name]).to_numpy().astype(SCORE_DTYPE, copy=True)
    given = series.is_not_null().to_numpy()
    bad = given & ~(np.isfinite(values) & (values >= 0))
    if name == "uptime_percent_24h":
        bad |= given & (values > 100)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        expected = "a percentage in [0, 100]" if name == "uptime_percent_24h" else "a finite number >= 0"
        errors.append((f"frame row {row} column `{name}`", f"Expected {expected}, got `{values[row]}`"))
    return values


def _codes_of(items: pl.Series) -> tuple[np.ndarray, list[str]]:
    """(code of every item, the distinct items, sorted): an Enum cast in
    Rust, so millions of rows never pass through Python one by one."""
    distinct = sorted(items.unique().to_list())
    codes = items.cast(pl.Enum(distinct)).to_physical().cast(pl.Int64).to_numpy()
    return codes, distinct


def _token_pairs(frame: pl.DataFrame, column: str, prefix: str, vocab: Vocabulary,
                 errors: list[tuple[str, str]]) -> tuple[np.ndarray, np.ndarray]:
    """Explode a ``name`` / ``name@version`` list column into (backend, bit)
    pairs, each item giving its bare and its versioned token."""
    if column not in frame.columns:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    items = (frame.select(pl.int_range(pl.len(), dtype=pl.Int64).alias("row"), pl.col(column))
             .explode(column).drop_nulls(column))
    if items.height == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    codes, distinct = _codes_of(items[column])
    bare_bit = np.empty(len(distinct), dtype=np.int64)
    exact_bit = np.empty(len(distinct), dtype=np.int64)
    for u, item in enumerate(distinct):
        name, version = split_requirement(item)
        if not name:
            errors.append((f"frame column `{column}`", f"Expected non-empty names, got `{item[:40]}`"))
        bare_bit[u] = vocab.add(prefix + name)
        exact_bit[u] = vocab.add(versioned(prefix + name, version or DEFAULT_VERSION))
    rows = items["row"].to_numpy()
    return np.concatenate([rows, rows]), np.concatenate([bare_bit[codes], exact_bit[codes]])


def columns_from_polars(frame: pl.DataFrame) -> Columns:
    """Compile a table of backends (see module docstring); RegistryError
    lists every problem found, nothing is built when any is found."""
    if not isinstance(frame, pl.DataFrame):
        raise RegistryError(f"Expected a polars DataFrame, got `{type(frame).__name__}`", "frame")
    errors: list[tuple[str, str]] = []
    n = frame.height
    if "backend_id" not in frame.columns:
        raise RegistryError("Required column is missing", "frame column `backend_id`")
    shape_errors = _column_errors(frame) + _list_dtype_errors(frame)
    if shape_errors:
        raise RegistryError(shape_errors)
    ids_series = frame["backend_id"].cast(pl.String)
    if ids_series.is_null().any() or (ids_series.str.len_chars() == 0).any():
        row = int((ids_series.is_null() | (ids_series.str.len_chars() == 0)).arg_true()[0])
        errors.append((f"frame row {row} column `backend_id`", "Expected a non-empty backend_id"))
    _control_errors(ids_series, pl.int_range(n, dtype=pl.Int64, eager=True), "backend_id", errors)
    dup = ids_series.is_duplicated()
    if dup.any():
        rows = dup.arg_true()
        first = ids_series[int(rows[0])]
        where = [int(r) for r in rows if ids_series[int(r)] == first][:2]
        errors.append((f"frame row {where[-1]} column `backend_id`",
                       f"Duplicate backend_id `{str(first)[:60]}`, first defined at frame row {where[0]}"))
    _nested_errors(frame, errors)
    btype = _codes(frame, "backend_type", TYPE_CODE, None, errors)
    health = _codes(frame, "health_status", HEALTH_CODE, HEALTH_CODE["unknown"], errors)
    consistency = _codes(frame, "consistency", CONSISTENCY_CODE, UNKNOWN_CONSISTENCY, errors)
    floats = {name: _float_column(frame, name, errors)
              for name in (*INPUT_FLOATS, *RESERVED_COLUMNS, *OPTIONAL_COLUMNS)}
    if errors:  # the names are exploded below only once they are known to be clean
        raise RegistryError(errors[:100])
    features, regions, compliance = Vocabulary(), Vocabulary(), Vocabulary()
    cb, ct = _token_pairs(frame, "capabilities", "c:", features, errors)
    ib, it = _token_pairs(frame, "interfaces", "i:", features, errors)
    region_pairs = _plain_pairs(frame, "regions", regions, errors)
    compliance_pairs = _plain_pairs(frame, "compliance", compliance, errors)
    entry_column = "capability_performance" if "capability_performance" in frame.columns else "capability_p99_ms"
    if entry_column == "capability_performance":
        lat_indptr, lat_token, lat_vtoken, lat_p99, capability_perf = _performance(frame, features, errors)
    else:
        (lat_indptr, lat_token, lat_vtoken, lat_p99), capability_perf = _latency(frame, features, errors), None
    fb, ft = np.concatenate([cb, ib]), np.concatenate([ct, it])
    feature_rows = set_bits((n, features.words), fb, ft)
    if len(lat_vtoken) and not errors:
        owner = np.repeat(np.arange(n), np.diff(lat_indptr))
        declared = has_bit(feature_rows, lat_vtoken, owner)
        if not declared.all():
            row = int(owner[np.flatnonzero(~declared)[0]])
            errors.append((f"frame row {row} column `{entry_column}`",
                           "Latency given for a capability the backend does not declare"
                           if entry_column == "capability_p99_ms" else
                           "Performance given for a capability the backend does not declare"))
    if errors:
        raise RegistryError(errors[:100])
    return assemble_columns(
        ids_series.to_list(), features, regions, compliance, feature_pairs=(fb, ft), feature_rows=feature_rows,
        region_pairs=region_pairs, compliance_pairs=compliance_pairs, backend_type=btype, health=health,
        consistency=consistency, floats=floats, lat_indptr=lat_indptr, lat_token=lat_token,
        lat_vtoken=lat_vtoken, lat_p99_ms=lat_p99, capability_perf=capability_perf)


_NAME_LISTS = ("capabilities", "interfaces", "regions", "compliance")
_TEXT_COLUMNS = ("backend_id", "backend_type", "health_status", "consistency")
_KNOWN_COLUMNS = (*_TEXT_COLUMNS, *_NAME_LISTS, "capability_p99_ms", "capability_performance", *FLOAT_COLUMNS, *RESERVED_COLUMNS,
                  *OPTIONAL_COLUMNS)
_TEXT_DTYPES = (pl.String, pl.Categorical, pl.Enum, pl.Null)


def _column_errors(frame: pl.DataFrame) -> list[tuple[str, str]]:
    """Unknown columns (a misspelt one would be dropped silently) and text
    columns that do not hold text."""
    errors = []
    for name in frame.columns:
        if name not in _KNOWN_COLUMNS:
            close = difflib.get_close_matches(name, _KNOWN_COLUMNS, n=1, cutoff=0.75)
            hint = f"; did you mean `{close[0]}`?" if close else ""
            errors.append((f"frame column `{name[:40]}`", f"Unknown column{hint}"))
    for name in _TEXT_COLUMNS:
        dtype = frame.schema.get(name)
        if dtype is not None and not isinstance(dtype, _TEXT_DTYPES) and dtype not in _TEXT_DTYPES:
            errors.append((f"frame column `{name}`", f"Expected text (`str`), got `{dtype}`"))
    return errors


def _control_errors(names: pl.Series, rows: pl.Series, column: str, errors: list[tuple[str, str]]) -> None:
    """The first name with a control character (``VERSION_SEP`` among them:
    ``get\x1fv2`` must not read as ``get@v2``), as the schema refuses it."""
    bad = names.str.contains(r"[\x00-\x1f]").fill_null(False)
    if bad.any():
        i = int(bad.arg_true()[0])
        errors.append((f"frame row {rows[i]} column `{column}`",
                       f'Expected a name without control characters, got `"{str(names[i])[:40]}"`'))


def _nested_errors(frame: pl.DataFrame, errors: list[tuple[str, str]]) -> None:
    """Inside the list columns: no null item, no control character, at most
    MAX_NAMES_PER_BACKEND names a backend; in ``capability_p99_ms`` no null
    entry, capability or latency."""
    for column in (*_NAME_LISTS, "capability_p99_ms"):
        if column not in frame.columns or frame.schema[column] == pl.Null:
            continue
        lengths = frame[column].list.len().fill_null(0)
        if len(lengths) and lengths.max() > MAX_NAMES_PER_BACKEND:
            row = int((lengths > MAX_NAMES_PER_BACKEND).arg_true()[0])
            errors.append((f"frame row {row} column `{column}`",
                           f"Expected at most {MAX_NAMES_PER_BACKEND:,} names in one backend, got {lengths[row]:,}"))
        items = (frame.select(pl.int_range(pl.len(), dtype=pl.Int64).alias("row"), pl.col(column))
                 .filter(pl.col(column).list.len() > 0).explode(column))  # an empty list explodes to a null
        if column == "capability_p99_ms":
            entries = items[column]
            fields = entries.struct.unnest() if entries.dtype != pl.Null else None
            null = entries.is_null()
            if fields is not None:
                null = null | fields["capability"].is_null() | fields["p99_ms"].is_null()
            names = fields["capability"] if fields is not None else None
        else:
            null = items[column].is_null()
            names = items[column]
        if null.any():
            i = int(null.arg_true()[0])
            errors.append((f"frame row {items['row'][i]} column `{column}`",
                           "Expected names without nulls, got a null inside the list" if column != "capability_p99_ms"
                           else "Expected `{capability, p99_ms}` entries without nulls, got a null"))
        if names is not None and names.dtype == pl.String:
            _control_errors(names, items["row"], column, errors)


def _list_dtype_errors(frame: pl.DataFrame) -> list[tuple[str, str]]:
    """The list columns must hold lists of names (and the latency column
    lists of ``{capability, p99_ms}``) before they can be exploded."""
    errors = []
    for name in _NAME_LISTS:
        dtype = frame.schema.get(name)
        if dtype is not None and dtype != pl.Null and not (
                isinstance(dtype, pl.List) and dtype.inner in (pl.String, pl.Null)):
            errors.append((f"frame column `{name}`", f"Expected a list of names (`list[str]`), got `{dtype}`"))
    dtype = frame.schema.get("capability_p99_ms")
    if dtype is not None and dtype != pl.Null:
        inner = dtype.inner if isinstance(dtype, pl.List) else None
        fields = {f.name: f.dtype for f in inner.fields} if isinstance(inner, pl.Struct) else {}
        if not (fields.get("capability") in (pl.String, pl.Null) and "p99_ms" in fields
                and (fields["p99_ms"].is_numeric() or fields["p99_ms"] == pl.Null)):
            errors.append(("frame column `capability_p99_ms`",
                           f"Expected a list of `{{capability: str, p99_ms: float}}`, got `{dtype}`"))
    dtype = frame.schema.get("capability_performance")
    if dtype is not None and dtype != pl.Null:
        inner = dtype.inner if isinstance(dtype, pl.List) else None
        fields = {f.name: f.dtype for f in inner.fields} if isinstance(inner, pl.Struct) else {}
        unknown = [name for name in fields if name != "capability" and name not in _PERF_FIELDS]
        wrong = [name for name, kind in fields.items() if name in _PERF_FIELDS and kind != pl.Null
                 and not (kind == pl.Boolean if name == "supports_batch" else kind.is_numeric())]
        if fields.get("capability") not in (pl.String, pl.Null) or unknown or wrong:
            what = f"; unknown field `{unknown[0][:40]}`" if unknown else (
                f"; field `{wrong[0]}` is `{fields[wrong[0]]}`" if wrong else "")
            errors.append(("frame column `capability_performance`",
                           f"Expected a list of `{{capability: str, p50_ms, ..., supports_batch: bool, ...}}`, "
                           f"got `{dtype}`{what}"))
    return errors


def _plain_pairs(frame: pl.DataFrame, column: str, vocab: Vocabulary,
                 errors: list[tuple[str, str]]) -> tuple[np.ndarray, np.ndarray]:
    if column not in frame.columns:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    items = (frame.select(pl.int_range(pl.len(), dtype=pl.Int64).alias("row"), pl.col(column).cast(pl.List(pl.String)))
             .explode(column).drop_nulls(column))
    if items.height == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    codes, distinct = _codes_of(items[column])
    if "" in distinct:
        errors.append((f"frame column `{column}`", "Expected non-empty names, got ``"))
    bit = np.array([vocab.add(x) for x in distinct], dtype=np.int64)
    return items["row"].to_numpy(), bit[codes]


def _entry_tokens(names: pl.Series, features: Vocabulary) -> tuple[np.ndarray, np.ndarray]:
    """(bare, versioned) feature bits of ``name`` / ``name@version`` items; -1 unknown."""
    if not len(names):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    codes, distinct = _codes_of(names)
    parts = [split_requirement(x) for x in distinct]
    bare_bit = np.array([features.index.get("c:" + name, -1) for name, _ in parts], dtype=np.int64)
    exact_bit = np.array([features.index.get(versioned("c:" + name, version or DEFAULT_VERSION), -1)
                          for name, version in parts], dtype=np.int64)
    return bare_bit[codes], exact_bit[codes]


def _performance(frame: pl.DataFrame, features: Vocabulary, errors: list[tuple[str, str]]):
    """``capability_performance`` → (indptr, token, vtoken, p99, the CAPABILITY_PERF columns)."""
    n = frame.height
    column = "capability_performance"
    items = (frame.select(pl.int_range(pl.len(), dtype=pl.Int64).alias("row"), pl.col(column))
             .explode(column).drop_nulls(column))
    items = items.unnest(column) if items.schema[column] != pl.Null else pl.DataFrame({"row": items["row"]})
    rows = items["row"].to_numpy()
    if "capability" not in items.columns or items["capability"].is_null().any():
        bad = 0 if "capability" not in items.columns else int(items["capability"].is_null().arg_true()[0])
        if len(rows):
            errors.append((f"frame row {rows[bad]} column `{column}`",
                           "Expected `{capability, ...}` entries with a capability, got a null"))
        names = pl.Series([], dtype=pl.String)
    else:
        names = items["capability"].cast(pl.String)
        _control_errors(names, items["row"], column, errors)
    values: dict[str, np.ndarray] = {}
    for key, (name, _) in _PERF_FIELDS.items():
        if key not in items.columns:
            values[name] = np.full(len(rows), -1 if name == "lat_batch" else np.nan)
            continue
        series = items[key]
        if name == "lat_batch":
            values[name] = np.where(series.is_null().to_numpy(), -1,
                                    series.cast(pl.Int8).fill_null(0).to_numpy()).astype(BATCH_DTYPE)
            continue
        got = series.cast(pl.Float64).fill_null(np.nan).to_numpy()
        bad = ~np.isnan(got) & ~(np.isfinite(got) & (got >= 0))
        if key in ("max_batch_size", "max_concurrent_operations"):
            bad |= ~np.isnan(got) & (np.mod(got, 1) != 0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            errors.append((f"frame row {rows[i]} column `{column}`",
                           f"Expected `{key}` to be a finite number >= 0"
                           f"{' and whole' if key in ('max_batch_size', 'max_concurrent_operations') else ''}, "
                           f"got `{got[i]}`"))
        values[name] = got.astype(SCORE_DTYPE)
    token, vtoken = _entry_tokens(names, features) if len(names) == len(rows) else \
        (np.zeros(len(rows), dtype=np.int64), np.zeros(len(rows), dtype=np.int64))
    if ((token < 0) | (vtoken < 0)).any():
        errors.append((f"frame column `{column}`", "Performance given for a capability the backend does not declare"))
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    p99 = values.pop("lat_p99_ms")
    return indptr, token, vtoken, p99, {name: values[name] for name in CAPABILITY_PERF}


def _latency(frame: pl.DataFrame, features: Vocabulary, errors: list[tuple[str, str]]):
    n = frame.height
    empty_i, empty_f = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=SCORE_DTYPE)
    if "capability_p99_ms" not in frame.columns:
        return np.zeros(n + 1, dtype=np.int64), empty_i, empty_i, empty_f
    items = (frame.select(pl.int_range(pl.len(), dtype=pl.Int64).alias("row"), pl.col("capability_p99_ms"))
             .explode("capability_p99_ms").drop_nulls("capability_p99_ms").unnest("capability_p99_ms")
             .drop_nulls("p99_ms"))
    p99 = items["p99_ms"].cast(pl.Float64).to_numpy()
    if len(p99) and not (np.isfinite(p99) & (p99 >= 0)).all():
        errors.append(("frame column `capability_p99_ms`", "Expected finite numbers >= 0"))
    if len(p99):
        codes, distinct = _codes_of(items["capability"])
        parts = [split_requirement(x) for x in distinct]
        bare_bit = np.array([features.index.get("c:" + name, -1) for name, _ in parts], dtype=np.int64)
        exact_bit = np.array([features.index.get(versioned("c:" + name, version or DEFAULT_VERSION), -1)
                              for name, version in parts], dtype=np.int64)
        token, vtoken = bare_bit[codes], exact_bit[codes]
    else:
        token = vtoken = np.zeros(0, dtype=np.int64)
    if ((token < 0) | (vtoken < 0)).any():
        errors.append(("frame column `capability_p99_ms`",
                       "Latency given for a capability the backend does not declare"))
    rows = items["row"].to_numpy()
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    return indptr, token, vtoken, p99.astype(SCORE_DTYPE)
