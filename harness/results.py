"""The results table: one Parquet row per (trial, evaluation step).

Each trial's rows live in their own file under ``<output>/results/``, rewritten whole through a
temporary file and an atomic rename at each evaluation, so a crash never leaves a half-written
file. ``load_results`` concatenates the files and fills columns that older tables lack.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from harness.errors import HarnessInputError

RESULTS_DIRNAME = "results"
STATUSES = ("running", "finished", "diverged", "failed")

# Columns every table carries, with their Arrow types. Task metrics and any later columns are
# added after these; a table written before a column existed loads with that column empty.
SCHEMA = pa.schema(
    [
        ("sweep_id", pa.string()),
        ("trial_id", pa.string()),
        ("config_id", pa.string()),
        ("task", pa.string()),
        ("setting", pa.string()),
        ("method", pa.string()),
        ("seed", pa.int64()),
        ("gamma", pa.float64()),
        ("lr_g", pa.float64()),
        ("lr_d", pa.float64()),
        ("batch_size", pa.int64()),
        ("steps", pa.int64()),
        ("optimizer", pa.string()),
        ("loss", pa.string()),
        ("step", pa.int64()),
        ("wall_time_s", pa.float64()),
        ("loss_g", pa.float64()),
        ("loss_d", pa.float64()),
        ("status", pa.string()),
        ("error", pa.string()),
        ("objective", pa.string()),
        ("objective_mode", pa.string()),
        ("eval_sample_count", pa.int64()),
        ("eval_reference_count", pa.int64()),
        ("eval_backbone", pa.string()),
        ("eval_reference", pa.string()),
        ("eval_seed", pa.int64()),
        ("jacobian_phase_factor", pa.float64()),
        ("jacobian_conditioning_factor", pa.float64()),
        ("jacobian_max_abs_eigenvalue", pa.float64()),
        ("jacobian_min_abs_eigenvalue", pa.float64()),
    ]
)
REQUIRED_COLUMNS = ("trial_id", "task", "setting", "method", "seed", "step", "status")


def results_dir(output: Path) -> Path:
    return output / RESULTS_DIRNAME


def _to_table(rows: list[dict[str, Any]]) -> pa.Table:
    frame = pd.DataFrame(rows)
    fields = list(SCHEMA)
    for column in frame.columns:
        if SCHEMA.get_field_index(column) < 0:
            fields.append(pa.field(column, pa.float64()))
    schema = pa.schema(fields)
    for field in schema:
        if field.name not in frame.columns:
            frame[field.name] = None
    return pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)


def write_atomic(table: pa.Table, path: Path) -> None:
    """Write ``table`` to ``path`` so readers see either the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            pq.write_table(table, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


class TrialResults:
    """The growing list of one trial's rows and its Parquet file.

    A trial that restarts (after a restored sweep or a retry) reopens its file: the rows written
    before are read back, and a row for a step at or before the last one replaces the rows from
    that step on, so each step appears once.
    """

    def __init__(self, directory: Path, trial_id: str, static: dict[str, Any]) -> None:
        self.path = directory / f"{trial_id}.parquet"
        self.static = {"trial_id": trial_id, **static}
        self.rows: list[dict[str, Any]] = []
        if self.path.is_file():
            self.rows = pq.read_table(self.path).to_pylist()

    def append(self, row: dict[str, Any]) -> None:
        unknown = set(row) & set(self.static)
        if unknown:
            raise ValueError(f"row repeats trial columns: {sorted(unknown)}")
        self.rows = [old for old in self.rows if old["step"] < row["step"]]
        self.rows.append({**self.static, **row})
        write_atomic(_to_table(self.rows), self.path)

    def mark_last(self, status: str, error: str | None = None) -> None:
        """Set the status of the trial's last row, adding a row at step 0 when there is none."""
        if not self.rows:
            self.rows.append({**self.static, "step": 0, "status": status, "error": error})
        else:
            self.rows[-1] = {**self.rows[-1], "status": status, "error": error}
        write_atomic(_to_table(self.rows), self.path)


def status_counts(path: Path, sweep_id: str) -> dict[str, int]:
    """Count the trials of one sweep by the status of their last row."""
    counts = dict.fromkeys(STATUSES[1:], 0)
    files = sorted(Path(path).glob("*.parquet"))
    if not files:
        return counts
    frame = load_results(path)
    last_rows = frame[frame["sweep_id"] == sweep_id].sort_values("step").groupby("trial_id").tail(1)
    for status, count in last_rows["status"].value_counts().items():
        counts[status] = counts.get(status, 0) + int(count)
    return counts


def load_results(path: Path) -> pd.DataFrame:
    """Read every trial file under ``path`` (an output folder, its results folder or one file)."""
    path = Path(path)
    if path.is_dir() and (path / RESULTS_DIRNAME).is_dir():
        path = path / RESULTS_DIRNAME
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(path.glob("*.parquet"))
    else:
        raise HarnessInputError(f"results not found: {path} does not exist")
    if not files:
        raise HarnessInputError(
            f"no results in {path}: expected *.parquet trial files; run `harness sweep` first"
        )

    frames = []
    for file in files:
        try:
            frames.append(pq.read_table(file).to_pandas())
        except (OSError, pa.ArrowInvalid) as error:
            raise HarnessInputError(f"cannot read results file {file}: {error}") from None
    frame = pd.concat(frames, ignore_index=True)

    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise HarnessInputError(f"{path}: not a results table, missing columns {', '.join(missing)}")
    for field in SCHEMA:
        if field.name not in frame.columns:
            frame[field.name] = pd.Series(None, index=frame.index, dtype=_PANDAS_DTYPES[field.type])
    return frame


# Nullable pandas types, so a column missing from an older table fills with NA.
_PANDAS_DTYPES = {pa.string(): object, pa.int64(): "Int64", pa.float64(): "float64"}
