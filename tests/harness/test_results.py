"""The Parquet results table: schema, atomic writes, old tables and unreadable files."""

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from harness.errors import HarnessInputError
from harness.results import REQUIRED_COLUMNS, SCHEMA, TrialResults, load_results

STATIC = {"sweep_id": "s", "config_id": "p0c0", "task": "gaussian", "setting": "default",
          "method": "jare", "seed": 1, "gamma": 2.0, "lr_g": 0.1, "lr_d": 0.1}


def test_rows_carry_schema_and_metrics(tmp_path):
    trial = TrialResults(tmp_path, "t1", STATIC)

    trial.append({"step": 10, "status": "running", "loss_g": -0.5, "distance_to_equilibrium": 1.5})
    trial.append({"step": 20, "status": "finished", "loss_g": -0.6, "distance_to_equilibrium": 0.5})

    table = pq.read_table(tmp_path / "t1.parquet")
    for field in SCHEMA:
        assert table.schema.field(field.name).type == field.type
    assert table.schema.field("distance_to_equilibrium").type == pa.float64()
    frame = table.to_pandas()
    assert list(frame["step"]) == [10, 20]
    assert list(frame["trial_id"]) == ["t1", "t1"]
    assert list(frame["method"]) == ["jare", "jare"]


def test_required_columns_present(tmp_path):
    TrialResults(tmp_path, "t1", STATIC).append({"step": 1, "status": "finished"})

    frame = load_results(tmp_path)

    for column in REQUIRED_COLUMNS:
        assert column in frame.columns


def test_write_leaves_no_temporary_files(tmp_path):
    trial = TrialResults(tmp_path, "t1", STATIC)
    for step in range(5):
        trial.append({"step": step, "status": "running"})

    assert sorted(p.name for p in tmp_path.iterdir()) == ["t1.parquet"]


def test_failed_write_keeps_previous_file(tmp_path, monkeypatch):
    trial = TrialResults(tmp_path, "t1", STATIC)
    trial.append({"step": 1, "status": "running"})

    def broken_write(table, handle):
        handle.write(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", broken_write)
    with pytest.raises(OSError):
        trial.append({"step": 2, "status": "running"})
    monkeypatch.undo()

    assert list(load_results(tmp_path)["step"]) == [1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t1.parquet"]


def test_mark_last_without_rows_adds_failed_row(tmp_path):
    trial = TrialResults(tmp_path, "t1", STATIC)

    trial.mark_last("failed", "ValueError: boom")

    frame = load_results(tmp_path)
    assert frame.loc[0, "status"] == "failed"
    assert frame.loc[0, "error"] == "ValueError: boom"
    assert frame.loc[0, "step"] == 0


def test_tasks_with_different_metrics_load_together(tmp_path):
    TrialResults(tmp_path, "a", STATIC).append({"step": 1, "status": "finished", "distance_to_equilibrium": 1.0})
    mog = {**STATIC, "task": "mog", "setting": "r2"}
    TrialResults(tmp_path, "b", mog).append({"step": 1, "status": "finished", "modes_covered": 8.0})

    frame = load_results(tmp_path).set_index("trial_id")

    assert frame.loc["a", "distance_to_equilibrium"] == 1.0
    assert pd.isna(frame.loc["a", "modes_covered"])
    assert frame.loc["b", "modes_covered"] == 8.0


def test_older_table_with_fewer_columns_loads(tmp_path):
    old = pd.DataFrame({"trial_id": ["x"], "task": ["gaussian"], "setting": ["default"], "method": ["simgd"],
                        "seed": [0], "step": [5], "status": ["finished"]})
    old.to_parquet(tmp_path / "x.parquet")

    frame = load_results(tmp_path)

    assert frame.loc[0, "method"] == "simgd"
    assert "eval_backbone" in frame.columns
    assert pd.isna(frame.loc[0, "eval_backbone"])


def test_output_folder_resolves_to_results(tmp_path):
    TrialResults(tmp_path / "results", "t1", STATIC).append({"step": 1, "status": "finished"})

    assert len(load_results(tmp_path)) == 1


def test_corrupt_file_is_named(tmp_path):
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")

    with pytest.raises(HarnessInputError, match="bad.parquet"):
        load_results(tmp_path)


def test_empty_folder(tmp_path):
    with pytest.raises(HarnessInputError, match="no results"):
        load_results(tmp_path)


def test_foreign_table_rejected(tmp_path):
    pd.DataFrame({"a": [1]}).to_parquet(tmp_path / "other.parquet")

    with pytest.raises(HarnessInputError, match="missing columns"):
        load_results(tmp_path)
