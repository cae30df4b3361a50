"""Sweep and step progress: counts, best results, time estimates and plain-text output.

Trials are real Ray Tune ``Trial`` records in the states a sweep puts them in; a hand-driven
clock makes the timing exact.
"""

import io

import pytest
from ray.tune.experiment import Trial

from harness.progress import (
    StepProgress,
    SweepProgress,
    estimate_seconds_left,
    format_duration,
    format_sweep_line,
    trial_state,
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    """A text stream that reports itself as a terminal, as a console does."""

    def isatty(self) -> bool:
        return True


def make_trial(task="gaussian", setting="default", method="jare", gamma=2.0, seed=0, steps=40,
               status=Trial.PENDING, result=None) -> Trial:
    config = {"task": task, "setting": setting, "method": method, "gamma": gamma, "seed": seed, "steps": steps}
    trial = Trial("run_trial", config=config, stub=True)
    trial.set_status(status)
    if result is not None:
        trial.update_last_result(result)
    return trial


def finished(value, **kwargs) -> Trial:
    metric = "distance_to_equilibrium" if kwargs.get("task", "gaussian") == "gaussian" else "high_quality_fraction"
    return make_trial(status=Trial.TERMINATED, result={"step": 40, "status": "finished", metric: value}, **kwargs)


@pytest.mark.parametrize("seconds, text", [(0, "0s"), (42.4, "42s"), (59.6, "1m00s"), (245, "4m05s"),
                                           (3600, "1h00m"), (7380, "2h03m"), (-3, "0s")])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_estimate_extrapolates_rate_since_start():
    # 2 trials of work in 20 s since the start is 10 s per trial; 7 trials are left.
    assert estimate_seconds_left(work_done=3.0, work_total=10, work_at_start=1.0, elapsed_s=20.0) == 70.0


def test_estimate_unknown_before_progress():
    assert estimate_seconds_left(work_done=1.0, work_total=10, work_at_start=1.0, elapsed_s=20.0) is None
    assert estimate_seconds_left(work_done=0.0, work_total=10, work_at_start=0.0, elapsed_s=0.0) is None


def test_trial_state_pending_and_running():
    pending = trial_state(make_trial())
    running = trial_state(make_trial(status=Trial.RUNNING, result={"step": 10, "status": "running"}))

    assert (pending.state, pending.work) == ("pending", 0.0)
    assert (running.state, running.work) == ("running", 0.25)
    assert running.setting == "gaussian/default"
    assert running.metric == "distance_to_equilibrium"


def test_trial_state_ended_trials():
    done = trial_state(finished(0.5))
    diverged = trial_state(make_trial(status=Trial.TERMINATED, result={"step": 7, "status": "diverged"}))
    no_objective = trial_state(make_trial(status=Trial.TERMINATED, result={"step": 40, "status": "finished"}))
    not_final = trial_state(make_trial(status=Trial.TERMINATED, result={"step": 20, "status": "running"}))
    errored = trial_state(make_trial(status=Trial.ERROR, result={"step": 20, "status": "running"}))

    assert (done.state, done.work, done.value) == ("finished", 1.0, 0.5)
    assert (diverged.state, diverged.work, diverged.value) == ("diverged", 1.0, None)
    assert no_objective.state == "failed"
    assert not_final.state == "failed"
    assert (errored.state, errored.work) == ("failed", 1.0)


def sweep_trials() -> list[Trial]:
    return [
        finished(0.5, method="jare", gamma=2.0, seed=0),
        finished(0.2, method="jare", gamma=0.5, seed=1),
        finished(0.9, method="simgd", seed=0),
        finished(0.3, task="mog", setting="r2", method="simgd", seed=0),
        finished(0.6, task="mog", setting="r2", method="conopt", gamma=10.0, seed=0),
        make_trial(status=Trial.TERMINATED, result={"step": 7, "status": "diverged"}),
        make_trial(status=Trial.ERROR),
        make_trial(status=Trial.RUNNING, result={"step": 20, "status": "running"}),
    ]


def test_snapshot_counts_and_best():
    clock = Clock()
    progress = SweepProgress(total_trials=10, stream=io.StringIO(), interval_s=60, clock=clock)

    snapshot = progress.snapshot(sweep_trials())

    assert snapshot.counts == {"finished": 5, "diverged": 1, "failed": 1, "running": 1}
    assert snapshot.done == 7
    assert snapshot.pending == 2
    # gaussian minimizes the distance, mog maximizes the high-quality fraction.
    best = {state.setting: (state.method, state.value, state.seed) for state in snapshot.best}
    assert best == {"gaussian/default": ("jare", 0.2, 1), "mog/r2": ("conopt", 0.6, 0)}


def test_snapshot_estimates_from_work_since_start():
    clock = Clock()
    progress = SweepProgress(total_trials=10, stream=io.StringIO(), interval_s=60, clock=clock)
    trials = sweep_trials()
    progress.snapshot(trials)  # 7 ended + 0.5 of a running trial: 7.5 trials of work at the start

    clock.now = 30.0
    trials[-1].set_status(Trial.TERMINATED)
    trials[-1].update_last_result({"step": 40, "status": "finished", "distance_to_equilibrium": 1.0})
    snapshot = progress.snapshot(trials)

    # 0.5 trials in 30 s is 60 s per trial, and 2 trials are left.
    assert snapshot.elapsed_s == 30.0
    assert snapshot.seconds_left == pytest.approx(120.0)


def test_sweep_line_is_plain_text():
    progress = SweepProgress(total_trials=10, stream=io.StringIO(), interval_s=60, clock=Clock())

    line = format_sweep_line(progress.snapshot(sweep_trials()))

    assert line.startswith("trials 7/10 done (5 finished, 1 diverged, 1 failed), 1 running, 2 pending; ")
    assert "gaussian/default distance_to_equilibrium 0.2 (jare γ=0.5, seed 1)" in line
    assert "mog/r2 high_quality_fraction 0.6 (conopt γ=10, seed 0)" in line
    assert "time left unknown" in line
    assert "\x1b" not in line
    assert "\r" not in line


def test_sweep_line_names_no_gamma_for_simgd():
    progress = SweepProgress(total_trials=1, stream=io.StringIO(), interval_s=60, clock=Clock())

    line = format_sweep_line(progress.snapshot([finished(0.125, method="simgd", gamma=10.0)]))

    # simgd ignores γ, so the value in its configuration means nothing.
    assert "best: gaussian/default distance_to_equilibrium 0.125 (simgd, seed 0); elapsed 0s" in line


def test_sweep_lines_follow_interval_and_trial_ends():
    clock = Clock()
    stream = io.StringIO()
    progress = SweepProgress(total_trials=10, stream=stream, interval_s=60, clock=clock)
    trials = sweep_trials()

    def lines() -> int:
        return len(stream.getvalue().splitlines())

    progress.on_step_end(0, trials)
    assert lines() == 1  # the first step prints at once

    clock.now = 10.0
    progress.on_step_end(1, trials)
    assert lines() == 1

    progress.on_trial_complete(1, trials, trials[0])
    clock.now = 20.0
    progress.on_step_end(2, trials)
    assert lines() == 1  # a trial ended, but half the interval has not passed

    clock.now = 31.0
    progress.on_step_end(3, trials)
    assert lines() == 2

    progress.on_trial_error(3, trials, trials[6])
    clock.now = 40.0
    progress.on_step_end(4, trials)
    assert lines() == 2
    clock.now = 61.0
    progress.on_step_end(5, trials)
    assert lines() == 3

    clock.now = 100.0
    progress.on_step_end(6, trials)
    assert lines() == 3  # no trial ended since the last line
    clock.now = 121.0
    progress.on_step_end(7, trials)
    assert lines() == 4  # the heartbeat after 60 s without a line

    progress.on_experiment_end(trials)
    assert lines() == 5


def test_sweep_interval_depends_on_terminal():
    assert SweepProgress(1, stream=Terminal()).interval_s == 10.0
    assert SweepProgress(1, stream=io.StringIO()).interval_s == 60.0


def test_step_lines_without_terminal():
    clock = Clock()
    stream = io.StringIO()
    progress = StepProgress(100, ["distance_to_equilibrium"], stream=stream, interval_s=10, clock=clock)

    clock.now = 1.0
    progress.update(1, -0.5, 0.5)  # the first step prints at once
    clock.now = 5.0
    progress.update(40, -0.25, 0.25)
    progress.evaluation({"step": 50, "status": "running", "distance_to_equilibrium": 1.5, "loss_g": -0.2})
    clock.now = 11.0
    progress.update(50, -0.2, 0.2)
    clock.now = 20.0
    progress.update(100, -0.1, 0.1)  # the last step always prints
    progress.close()

    lines = stream.getvalue().splitlines()
    assert lines == [
        "step 1/100 (1%): loss_g -0.5, loss_d 0.5; 1 steps/s, about 1m39s left",
        "step 50/100 (50%): loss_g -0.2, loss_d 0.2, distance_to_equilibrium 1.5; 4.55 steps/s, about 11s left",
        "step 100/100 (100%): loss_g -0.1, loss_d 0.1, distance_to_equilibrium 1.5; 5 steps/s",
    ]


def test_step_close_prints_last_step():
    clock = Clock()
    stream = io.StringIO()
    progress = StepProgress(100, [], stream=stream, interval_s=60, clock=clock)

    clock.now = 1.0
    progress.update(1, 0.0, 0.0)
    clock.now = 3.0
    progress.update(7, float("nan"), 1.0)  # a diverging trial stops before its last step
    progress.close()

    last = stream.getvalue().splitlines()[-1]
    assert last == "step 7/100 (7%): loss_g nan, loss_d 1; 2.33 steps/s, about 40s left"


def test_step_bar_on_terminal():
    stream = Terminal()
    progress = StepProgress(20, ["distance_to_equilibrium"], stream=stream)

    progress.evaluation({"distance_to_equilibrium": 0.25})
    for step in range(1, 21):
        progress.update(step, -0.5, 0.5)
    progress.close()

    text = stream.getvalue()
    assert "20/20" in text
    assert "loss_g -0.5, loss_d 0.5, distance_to_equilibrium 0.25" in text
