"""A rerun's summary rows against committed ones, value for value (`mec reproduce`, `make reproduce`).

Both files are summary tables of the workflow (e.g. summary/learned_seeds.parquet: one row per sweep point, policy
and training seed). Rows are matched on the key columns the two share (KEY_COLUMNS: phase, size, policy, seed,
metric, ...); every other column present in both is compared exactly (floats bit for bit, NaN equal to NaN). A
committed row without a rerun counterpart is "not rerun", which is allowed (a rerun usually covers a subset); a rerun
row without a committed one is ignored. Bit-identical training needs the same CPU model (docs/reproducing.md), so
the report names the CPU model and commit that each file's provenance records.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from mec import io

KEY_COLUMNS = ("phase", "n", "n_ue", "n_clusters", "policy", "seed", "metric", "iteration", "kind", "sample",
               "variant", "scenario", "w_energy")  # fmt: skip


# Columns never compared: the decision times per slot (mec.decision_time), machine-dependent and noisy by nature.
UNCOMPARED_COLUMNS = ("decide_latency_ms", "decide_batch_ms_per_slot")


class ReproduceError(ValueError):
    """Inputs that cannot be compared: one line naming the file and what is wrong."""


@dataclass(frozen=True)
class Comparison:
    keys: list[str]
    values: list[str]
    rerun: int  # committed rows with a rerun counterpart
    committed: int  # committed rows
    differing: pd.DataFrame  # one row per differing (row, column): the keys, column, committed, rerun

    @property
    def equal(self) -> bool:
        return self.rerun > 0 and self.differing.empty


def _read(path: Path, what: str) -> pd.DataFrame:
    if os.path.exists(path) and not os.path.isfile(path):
        raise ReproduceError(f"{what} {path}: not a regular file; allowed: a summary table of the workflow (Parquet)")
    try:
        frame = pd.read_parquet(path)
    except FileNotFoundError:
        raise ReproduceError(f"{what} {path}: no such file") from None
    except (pa.ArrowException, OSError, ValueError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ReproduceError(f"{what} {path}: not a readable Parquet file ({reason})") from None
    if frame.empty:
        raise ReproduceError(f"{what} {path}: has no rows; allowed: a summary table of the workflow")
    return frame


def _same(a: pd.Series, b: pd.Series) -> np.ndarray:
    """Elementwise exact equality, NaN equal to NaN."""
    if pd.api.types.is_float_dtype(a) or pd.api.types.is_float_dtype(b):
        x, y = a.to_numpy(dtype=float), b.to_numpy(dtype=float)
        return (x == y) | (np.isnan(x) & np.isnan(y))
    return (a.astype(object).to_numpy() == b.astype(object).to_numpy())


def compare(committed: pd.DataFrame, rerun: pd.DataFrame) -> Comparison:
    """Match the rerun's rows to the committed ones on their shared key columns and compare every shared value."""
    keys = [c for c in KEY_COLUMNS if c in committed.columns and c in rerun.columns]
    if not keys:
        raise ReproduceError(f"no key column in both tables; allowed: tables with some of {', '.join(KEY_COLUMNS)}")
    values = [c for c in committed.columns if c in rerun.columns and c not in keys and c not in UNCOMPARED_COLUMNS]
    if not values:
        raise ReproduceError("no value column in both tables besides the keys " + ", ".join(keys))
    for name, frame in (("committed", committed), ("rerun", rerun)):
        if frame.duplicated(keys).any():
            raise ReproduceError(f"the {name} table has several rows per key ({', '.join(keys)}): not a summary table")
    merged = committed.merge(rerun, on=keys, how="inner", suffixes=("__committed", "__rerun"))
    differing = []
    for column in values:
        same = _same(merged[f"{column}__committed"], merged[f"{column}__rerun"])
        for i in np.flatnonzero(~same):
            row = merged.iloc[i]
            differing.append({**{k: row[k] for k in keys}, "column": column,
                              "committed": row[f"{column}__committed"], "rerun": row[f"{column}__rerun"]})  # fmt: skip
    differing = pd.DataFrame(differing, columns=[*keys, "column", "committed", "rerun"])
    return Comparison(keys, values, len(merged), len(committed), differing.sort_values(keys, kind="stable",
                                                                                         ignore_index=True))


def _origin(path: Path) -> str:
    """The CPU model and source commit of the machine that wrote the file, as its provenance records them."""
    meta = io.read_provenance(path)
    machine = meta.get("machine")
    cpu = machine.get("cpu") if isinstance(machine, dict) else None
    commit = meta.get("commit")
    if not cpu and not commit:
        return "written before files recorded their CPU model and commit"
    return f"written on {cpu or 'an unrecorded CPU'} at commit {commit or 'unrecorded'}"


def report(committed_path: Path, rerun_path: Path) -> tuple[bool, str]:
    """(all rerun rows equal, the report's text)."""
    committed, rerun = _read(committed_path, "--committed"), _read(rerun_path, "--rerun")
    try:
        result = compare(committed, rerun)
    except ReproduceError as exc:  # name the files it read
        raise ReproduceError(f"--committed {committed_path} and --rerun {rerun_path}: {exc}") from None
    lines = [
        f"committed: {committed_path} ({_origin(committed_path)})",
        f"rerun:     {rerun_path} ({_origin(rerun_path)})",
        f"rows matched on {', '.join(result.keys)}; compared: {', '.join(result.values)}",
    ]
    timings = [c for c in UNCOMPARED_COLUMNS if c in committed.columns and c in rerun.columns]
    if timings:
        lines.append(f"not compared (timings of this machine): {', '.join(timings)}")
    if result.rerun == 0:
        lines.append(f"none of the {result.committed} committed rows was rerun: rerun some of their points and seeds")
        return False, "\n".join(lines)
    if result.equal:
        lines.append(f"{result.rerun} of {result.committed} committed rows rerun: all equal bit for bit")
        return True, "\n".join(lines)
    rows = result.differing.drop_duplicates(result.keys)
    lines.append(f"{len(rows)} of the {result.rerun} rerun rows differ ({len(result.differing)} values); "
                 "bit-identical reruns need the committed run's CPU model (above):")  # fmt: skip
    with pd.option_context("display.precision", 17, "display.width", 200, "display.max_columns", 20):
        lines.append(result.differing.head(20).to_string(index=False))
    if len(result.differing) > 20:
        lines.append(f"... and {len(result.differing) - 20} more")
    return False, "\n".join(lines)
