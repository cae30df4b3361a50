"""Live progress of a sweep and of a single trial, readable on a terminal and in log files.

``SweepProgress`` is a Ray Tune callback that prints one line per update: trials finished,
diverged, failed, running and pending, the best result so far per setting and an estimate of
the time left. ``StepProgress`` shows one trial's steps with its latest losses: a tqdm bar on a
terminal, plain periodic lines otherwise. Neither writes ANSI control codes when the stream is
not a terminal, so CI and SLURM logs stay plain text.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TextIO

from ray.tune import Callback

from harness.tasks import get_task
from harness.tracking import end_status

SWEEP_INTERVAL_TTY_S = 10.0
SWEEP_INTERVAL_PLAIN_S = 60.0
STEP_INTERVAL_PLAIN_S = 30.0

Clock = Callable[[], float]


def format_duration(seconds: float) -> str:
    """Format seconds as ``42s``, ``4m05s`` or ``2h03m``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def estimate_seconds_left(work_done: float, work_total: float, work_at_start: float, elapsed_s: float) -> float | None:
    """Extrapolate the work rate since the start to the work left; None before any progress.

    Work is counted in trials, a running trial as the fraction of its steps done, so the
    estimate assumes the remaining trials cost as much per step as the ones seen so far.
    """
    gained = work_done - work_at_start
    if gained <= 0 or elapsed_s <= 0:
        return None
    return max(0.0, work_total - work_done) * elapsed_s / gained


def is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


# Sweeps


@dataclass(frozen=True)
class TrialState:
    """The state and progress of one sweep trial, read from Ray Tune's trial record."""

    state: str
    """pending, running, finished, diverged or failed."""
    work: float
    """Fraction of the trial's steps done; 1 once it ended."""
    setting: str
    """``task/setting``."""
    method: str
    gamma: float
    seed: int
    metric: str
    mode: str
    value: float | None = None
    """The objective's final value, for a finished trial."""


def trial_states(trial) -> list[TrialState]:
    """Return the state of each trial a Ray Tune ``Trial`` trains: itself, or each member of its batch."""
    from harness.batched import BATCH_KEY

    if BATCH_KEY not in trial.config:
        return [trial_state(trial)]
    last = trial.last_result or {}
    members = last.get("members") or {}
    return [
        config_state(trial.status, values, {"step": last.get("step"), **members.get(str(index), {})})
        for index, values in enumerate(trial.config[BATCH_KEY])
    ]


def trial_state(trial) -> TrialState:
    """Read a Ray Tune ``Trial``: its status, last result and configuration."""
    return config_state(trial.status, trial.config, trial.last_result or {})


def config_state(status: str, config: dict, last: dict) -> TrialState:
    """Return the state of one trial configuration from its Ray Tune status and last result row."""
    task = get_task(config["task"])
    common = {
        "setting": f"{config['task']}/{config['setting']}",
        "method": config["method"],
        "gamma": float(config["gamma"]),
        "seed": int(config["seed"]),
        "metric": task.objective,
        "mode": task.mode,
    }
    if status == "ERROR":
        return TrialState("failed", 1.0, **common)
    if status == "TERMINATED":
        status, _ = end_status(last, task.objective)
        value = float(last[task.objective]) if status == "finished" else None
        return TrialState(status, 1.0, value=value, **common)

    steps = int(config.get("steps") or 0)
    step = last.get("step")
    fraction = min(1.0, step / steps) if isinstance(step, (int, float)) and steps > 0 else 0.0
    return TrialState("running" if status == "RUNNING" else "pending", fraction, **common)


@dataclass
class SweepSnapshot:
    """Counts, best results and timing of a sweep at one moment."""

    total: int
    counts: dict[str, int]
    """Trials by state: finished, diverged, failed, running."""
    best: list[TrialState] = field(default_factory=list)
    """The best finished trial of each setting, in the order the settings first appear."""
    elapsed_s: float = 0.0
    seconds_left: float | None = None

    @property
    def done(self) -> int:
        return self.counts["finished"] + self.counts["diverged"] + self.counts["failed"]

    @property
    def pending(self) -> int:
        return max(0, self.total - self.done - self.counts["running"])


def best_per_setting(states: Iterable[TrialState]) -> list[TrialState]:
    best: dict[str, TrialState] = {}
    for state in states:
        if state.state != "finished" or state.value is None:
            continue
        current = best.get(state.setting)
        better = current is None or (state.value < current.value if state.mode == "min" else state.value > current.value)
        if better:
            best[state.setting] = state
    return list(best.values())


def format_sweep_line(snapshot: SweepSnapshot) -> str:
    counts = snapshot.counts
    parts = [
        f"trials {snapshot.done}/{snapshot.total} done ({counts['finished']} finished, "
        f"{counts['diverged']} diverged, {counts['failed']} failed), "
        f"{counts['running']} running, {snapshot.pending} pending"
    ]
    if snapshot.best:
        parts.append("best: " + ", ".join(_format_best(state) for state in snapshot.best))
    else:
        parts.append("best: none finished yet")
    timing = f"elapsed {format_duration(snapshot.elapsed_s)}"
    if snapshot.done < snapshot.total:
        left = snapshot.seconds_left
        timing += ", time left unknown" if left is None else f", about {format_duration(left)} left"
    parts.append(timing)
    return "; ".join(parts)


def _format_best(state: TrialState) -> str:
    from methods import get_method

    gamma = f" γ={state.gamma:.3g}" if get_method(state.method).uses_gamma else ""
    return f"{state.setting} {state.metric} {state.value:.4g} ({state.method}{gamma}, seed {state.seed})"


class SweepProgress(Callback):
    """A Ray Tune callback that prints the sweep's progress as plain lines.

    A line comes at the start, at least every ``interval_s`` seconds, and at the end. When a
    trial ends, a line comes as soon as half the interval has passed since the last one, so a
    sweep of many short trials prints at most two lines per interval. The default interval is
    10 s on a terminal and 60 s otherwise, which keeps CI and SLURM logs short.
    """

    def __init__(self, total_trials: int, stream: TextIO | None = None, interval_s: float | None = None,
                 clock: Clock = time.monotonic) -> None:
        self.total = total_trials
        self.stream = stream or sys.stdout
        if interval_s is None:
            interval_s = SWEEP_INTERVAL_TTY_S if is_terminal(self.stream) else SWEEP_INTERVAL_PLAIN_S
        self.interval_s = interval_s
        self.clock = clock
        self._started: float | None = None
        self._work_at_start = 0.0
        self._last_line: float | None = None
        self._ended_since_line = False

    def __getstate__(self) -> dict[str, Any]:
        # Ray Tune pickles callbacks into its experiment state; a restored sweep attaches a new
        # reporter, so the pickled copy keeps no stream.
        return {"total": self.total}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def snapshot(self, trials: list) -> SweepSnapshot:
        """Count ``trials`` by state; the estimate uses the work done since the first call."""
        now = self.clock()
        states = [state for trial in trials for state in trial_states(trial)]
        work = sum(state.work for state in states)
        if self._started is None:
            # A restored sweep starts with work done before; only work since then sets the rate.
            self._started, self._work_at_start = now, work

        counts = dict.fromkeys(("finished", "diverged", "failed", "running"), 0)
        for state in states:
            if state.state in counts:
                counts[state.state] += 1
        elapsed = now - self._started
        return SweepSnapshot(
            total=max(self.total, len(trials)),
            counts=counts,
            best=best_per_setting(states),
            elapsed_s=elapsed,
            seconds_left=estimate_seconds_left(work, self.total, self._work_at_start, elapsed),
        )

    def print_line(self, trials: list) -> None:
        print(format_sweep_line(self.snapshot(trials)), file=self.stream, flush=True)
        self._last_line = self.clock()
        self._ended_since_line = False

    # Ray Tune events

    def on_step_end(self, iteration: int, trials: list, **info) -> None:
        if self._last_line is None:
            self.print_line(trials)
            return
        since = self.clock() - self._last_line
        if since >= self.interval_s or (self._ended_since_line and since >= self.interval_s / 2):
            self.print_line(trials)

    def on_trial_complete(self, iteration: int, trials: list, trial, **info) -> None:
        self._ended_since_line = True

    def on_trial_error(self, iteration: int, trials: list, trial, **info) -> None:
        self._ended_since_line = True

    def on_experiment_end(self, trials: list, **info) -> None:
        self.print_line(trials)


# Single trials


class StepProgress:
    """Step progress of one trial with its latest losses and evaluation metrics.

    On a terminal this is a tqdm bar. Otherwise it prints a plain line at most every
    ``interval_s`` seconds (default 30 s) and one after the last step.
    """

    def __init__(self, total_steps: int, metric_names: Iterable[str], first_step: int = 0,
                 stream: TextIO | None = None, interval_s: float | None = None,
                 clock: Clock = time.monotonic) -> None:
        self.total_steps = total_steps
        self.metric_names = tuple(metric_names)
        self.stream = stream or sys.stdout
        self.interval_s = STEP_INTERVAL_PLAIN_S if interval_s is None else interval_s
        self.clock = clock
        self.first_step = first_step
        self.step = first_step
        self.losses: tuple[float, float] | None = None
        self.metrics: dict[str, float] = {}
        self._started = clock()
        self._last_line: float | None = None
        self._printed_step = first_step
        self._terminal = is_terminal(self.stream)
        self._bar = None

    def evaluation(self, row: dict[str, Any]) -> None:
        """Keep the task metrics of an evaluation row for the next update."""
        self.metrics = {name: row[name] for name in self.metric_names
                        if isinstance(row.get(name), (int, float))}

    def update(self, step: int, loss_g: float, loss_d: float) -> None:
        """Record a finished step; ``Trainer.run`` calls this as its ``on_step``."""
        self.step, self.losses = step, (loss_g, loss_d)
        if self._terminal:
            if self._bar is None:
                # Created at the first step, so the log lines of the trainer's start come before it.
                from tqdm import tqdm

                self._bar = tqdm(total=self.total_steps, initial=self.first_step, unit="step", file=self.stream,
                                 dynamic_ncols=True)
            self._bar.set_postfix_str(self.describe_values(), refresh=False)
            self._bar.update(step - self._bar.n)
            return
        now = self.clock()
        if self._last_line is None or now - self._last_line >= self.interval_s or step == self.total_steps:
            self._print_line(now)

    def close(self) -> None:
        """Close the bar, or print the last step when no line shows it yet."""
        if self._terminal:
            if self._bar is not None:
                self._bar.close()
        elif self.step != self._printed_step:
            self._print_line(self.clock())

    def describe_values(self) -> str:
        values = []
        if self.losses is not None:
            values += [f"loss_g {_format_value(self.losses[0])}", f"loss_d {_format_value(self.losses[1])}"]
        values += [f"{name} {_format_value(value)}" for name, value in self.metrics.items()]
        return ", ".join(values)

    def format_line(self, now: float) -> str:
        percent = 100.0 * self.step / self.total_steps if self.total_steps else 100.0
        line = f"step {self.step}/{self.total_steps} ({percent:.0f}%)"
        values = self.describe_values()
        if values:
            line += f": {values}"
        elapsed = now - self._started
        done = self.step - self.first_step
        if done > 0 and elapsed > 0:
            rate = done / elapsed
            line += f"; {rate:.3g} steps/s"
            if self.step < self.total_steps:
                line += f", about {format_duration((self.total_steps - self.step) / rate)} left"
        return line

    def _print_line(self, now: float) -> None:
        print(self.format_line(now), file=self.stream, flush=True)
        self._last_line = now
        self._printed_step = self.step


def _format_value(value: float) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return f"{value:.4g}"
