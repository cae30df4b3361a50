"""``harness ui`` in a real browser: the MLflow UI shows a sweep's experiment, runs and metrics.

Runs headless Chromium (Debian's ``chromium`` package) through Playwright against a UI bound to
127.0.0.1, and saves a screenshot in the sweep's output folder.
"""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from harness.cli import main
from harness.tracking import default_tracking_uri
from tests.conftest import REPO_ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]
SPEC = {
    "name": "ui-test",
    "grid": {"methods": ["simgd", "jare"], "settings": ["gaussian"], "seeds": [0]},
    "train": {"steps": 20, "eval_every": 10, "lr": 0.01, "gamma": 1.0},
    "sweep": {"num_samples": 1, "max_concurrent_trials": 2},
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_http(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"{url} did not answer within {seconds} s")


@pytest.fixture(scope="module")
def sweep_output(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ui")
    spec = folder / "spec.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    assert main(["sweep", str(spec), "--output", str(folder / "out")]) == 0
    return folder / "out"


@pytest.fixture(scope="module")
def ui_server(sweep_output):
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "ui", str(sweep_output), "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/", seconds=120)
        yield f"http://127.0.0.1:{port}", server
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.slow
def test_browser_shows_experiment_runs_and_metrics(sweep_output, ui_server):
    playwright = pytest.importorskip("playwright.sync_api")
    if not os.path.exists(CHROMIUM):
        pytest.skip("chromium not installed: apt-get install chromium")
    base_url, _ = ui_server
    client = MlflowClient(default_tracking_uri(sweep_output))
    experiment = client.get_experiment_by_name("ui-test")
    runs = client.search_runs([experiment.experiment_id])
    child = next(r for r in runs if r.data.tags.get("method") == "jare")
    parent_name = next(r.info.run_name for r in runs if "mlflow.parentRunId" not in r.data.tags)

    with playwright.sync_playwright() as session:
        browser = session.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})

        page.goto(f"{base_url}/#/experiments/{experiment.experiment_id}/runs", timeout=120_000)
        page.get_by_text("matching runs").wait_for(timeout=120_000)
        # The experiment's name can render after the run count, so wait for it too.
        page.get_by_text("ui-test").first.wait_for(timeout=60_000)
        assert page.get_by_text("ui-test").first.is_visible()
        parent_cell = page.locator("[role='gridcell']").filter(has_text=parent_name).first
        parent_cell.locator("button").first.click()  # expands the parent's child runs
        page.get_by_text("jare/gaussian-default/seed0").first.wait_for(timeout=60_000)
        assert page.get_by_text("simgd/gaussian-default/seed0").first.is_visible()
        page.screenshot(path=str(sweep_output / "ui-experiment.png"))

        page.goto(f"{base_url}/#/experiments/{experiment.experiment_id}/runs/{child.info.run_id}")
        page.get_by_text("jare/gaussian-default/seed0").first.wait_for(timeout=120_000)
        page.get_by_text("distance_to_equilibrium").first.wait_for(timeout=60_000)
        assert page.get_by_text("Parent run").first.is_visible()
        page.screenshot(path=str(sweep_output / "ui-run.png"), full_page=True)
        browser.close()

    assert (sweep_output / "ui-experiment.png").stat().st_size > 10_000
    keep = REPO_ROOT / "test-artifacts"
    keep.mkdir(exist_ok=True)
    for name in ("ui-experiment.png", "ui-run.png"):
        shutil.copy(sweep_output / name, keep / name)


def test_ui_port_in_use_exits_2(sweep_output, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]

        code = main(["ui", str(sweep_output), "--port", str(port)])

    assert code == 2
    assert f"port {port} on 127.0.0.1 is already in use" in capsys.readouterr().err


def test_ui_folder_without_store_exits_2(tmp_path, capsys):
    code = main(["ui", str(tmp_path)])

    assert code == 2
    assert "no MLflow store" in capsys.readouterr().err


def test_ui_missing_folder_exits_2(tmp_path, capsys):
    code = main(["ui", str(tmp_path / "absent")])

    assert code == 2
    assert "not found" in capsys.readouterr().err
