"""``match_many_dask`` (the ``prism_match[dask]`` extra) on a local cluster of
two worker processes: the answer equals ``Registry.match_many`` on the same
slots, whether the registry travels as snapshot bytes or as a snapshot path,
and each worker loads a snapshot once however many partitions it matches."""

from __future__ import annotations

import dask
import dask.dataframe as dd
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from distributed import Client, LocalCluster

from prism_match import RegistryError, load_registry
from prism_match.distributed import RESULT_DTYPES, cache_info, match_many_dask, result_meta
from prism_match.synthetic import generate_registry, generate_slots

PARTITIONS = 6


@pytest.fixture(scope="module")
def registry():
    return load_registry(generate_registry(300, seed=21))


@pytest.fixture(scope="module")
def slots() -> pd.DataFrame:
    """600 slots as a pandas table: list columns as Arrow lists (which Dask
    keeps as lists), flat and dotted performance columns, some gaps, and one
    slot nothing can match."""
    raw = generate_slots(599, seed=22) + [{"slot_name": "graph", "capabilities": [], "interfaces": ["Nope"],
                                            "performance": {"min_write_rps": 0, "min_read_rps": 0}}]
    names = pd.ArrowDtype(pa.list_(pa.string()))
    return pd.DataFrame({
        "slot_name": [s["slot_name"] for s in raw],
        "capabilities": pd.Series([s["capabilities"] for s in raw], dtype=names),
        "interfaces": pd.Series([s["interfaces"] for s in raw], dtype=names),
        "min_write_rps": [s["performance"]["min_write_rps"] for s in raw],
        "performance.min_read_rps": [s["performance"]["min_read_rps"] for s in raw],
        "preferred_region": [s.get("preferred_region") for s in raw],
        "regions": pd.Series([s.get("regions") for s in raw], dtype=names),
    })


@pytest.fixture(scope="module")
def expected(registry, slots) -> pl.DataFrame:
    return registry.match_many(pl.from_pandas(slots), 3)


@pytest.fixture(scope="module")
def client():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        yield client


def collected(result: dd.DataFrame) -> pl.DataFrame:
    return pl.from_pandas(result.compute().reset_index(drop=True)).sort(
        "slot_index", "rank", nulls_last=True, maintain_order=True)


def test_a_registry_shipped_as_bytes_answers_as_match_many(client, registry, slots, expected):
    before = sum(info["loaded"] for info in client.run(cache_info).values())
    result = match_many_dask(registry, dd.from_pandas(slots, npartitions=PARTITIONS), 3)
    assert isinstance(result, dd.DataFrame)
    assert result.dtypes.equals(result_meta().dtypes)
    assert list(result.columns) == list(RESULT_DTYPES)
    computed = result.compute()
    assert computed.dtypes.equals(result_meta().dtypes)
    got = pl.from_pandas(computed.reset_index(drop=True))
    assert got.schema == expected.schema
    assert got.equals(expected)
    assert got.filter(pl.col("slot_name") == "graph")["rank"].to_list() == [None]
    # Six partitions on two workers: the snapshot was loaded at most once per worker.
    loads = sum(info["loaded"] for info in client.run(cache_info).values()) - before
    assert 1 <= loads <= 2


def test_a_snapshot_path_answers_as_match_many(client, registry, slots, expected, tmp_path):
    path = tmp_path / "registry.npz"
    registry.save(path)
    got = collected(match_many_dask(str(path), dd.from_pandas(slots, npartitions=PARTITIONS), 3))
    assert got.equals(expected)


def test_list_columns_dask_turned_into_strings_are_still_read_as_lists(client, registry, slots, expected):
    # Dask converts object columns to strings by default, lists included
    # ("['get', 'set']"); the names are read back from the text.
    plain = slots.assign(**{c: slots[c].map(lambda v: None if v is None else list(v), na_action="ignore")
                            .astype(object) for c in ("capabilities", "interfaces", "regions")})
    with dask.config.set({"dataframe.convert-string": True}):
        ddf = dd.from_pandas(plain, npartitions=3)
    assert str(ddf.dtypes["capabilities"]).startswith("string")
    assert collected(match_many_dask(registry, ddf, 3)).equals(expected)


def test_without_a_cluster_the_local_scheduler_gives_the_same_answer(registry, slots, expected, tmp_path):
    path = tmp_path / "registry.npz"
    registry.save(path)
    result = match_many_dask(path, dd.from_pandas(slots, npartitions=4), 3)
    got = pl.from_pandas(result.compute(scheduler="sync").reset_index(drop=True))
    assert got.equals(expected)


def test_a_bad_slot_fails_the_computation_naming_it(client, registry, slots):
    bad = slots.head(4).copy()
    bad.loc[2, "min_write_rps"] = -1
    with pytest.raises(RegistryError, match=r"Expected a finite number >= 0, got `-1` - at slots\[2\] slot "
                                            r"`slot-000002` \$\.performance\.min_write_rps"):
        match_many_dask(registry, dd.from_pandas(bad, npartitions=1), 1).compute()


@pytest.mark.parametrize("args, message", [
    (dict(k=0), r"^Expected `k` >= 1, got `0` - at match_many_dask$"),
    (dict(threads=0), r"^Expected `threads` >= 1, got `0` - at match_many_dask$"),
    (dict(source=12), r"^Expected a Registry or a snapshot path, got `int` - at match_many_dask$"),
    (dict(source="/nowhere/registry.npz"), r"^No such file - at /nowhere/registry\.npz$"),
    (dict(ddf="slots"), r"^Expected a Dask DataFrame of slots, got `str` - at match_many_dask$"),
])
def test_bad_arguments_are_refused_before_anything_runs(registry, slots, args, message):
    source = args.pop("source", registry)
    ddf = args.pop("ddf", dd.from_pandas(slots.head(3), npartitions=1))
    with pytest.raises(RegistryError, match=message):
        match_many_dask(source, ddf, **{"k": 1, **args})
