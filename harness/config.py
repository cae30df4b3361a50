"""The sweep spec: a typed schema for the YAML file, with ``--set`` overrides.

Every field has a type, a default and a description; unknown keys are rejected. Errors name
the field by its dotted path (``grid.methods.2``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError, field_validator, model_validator

from harness.errors import HarnessInputError

SEARCHABLE = ("gamma", "lr", "lr_g", "lr_d")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Range(Strict):
    """Base of the distributions on an interval [low, high]: checks that low < high.

    Subclasses declare ``low`` and ``high`` after ``distribution``, so the spec reference keeps
    that field order.
    """

    @model_validator(mode="after")
    def _ordered(self):
        if self.high <= self.low:
            raise ValueError(f"high ({self.high}) must be greater than low ({self.low})")
        return self


class LogUniform(Range):
    """A value sampled log-uniformly in [low, high]."""

    distribution: Literal["loguniform"]
    low: float = Field(gt=0, description="Lower bound, > 0.")
    high: float = Field(gt=0, description="Upper bound, > low.")


class Uniform(Range):
    """A value sampled uniformly in [low, high]."""

    distribution: Literal["uniform"]
    low: float = Field(ge=0, description="Lower bound, ≥ 0.")
    high: float = Field(gt=0, description="Upper bound, > low.")


class Choice(Strict):
    """A value chosen from a list."""

    distribution: Literal["choice"]
    values: list[Annotated[float, Field(ge=0)]] = Field(min_length=1, description="Candidate values, ≥ 0.")


Distribution = Annotated[LogUniform | Uniform | Choice, Field(discriminator="distribution")]


class Grid(Strict):
    """Axes crossed in full: every method on every setting with every seed."""

    methods: list[str] = Field(min_length=1, description="Update rules by registry name.")
    settings: list[str] = Field(
        min_length=1, description="Settings as task/setting (cifar10/A, mog/r2) or a bare task name."
    )
    seeds: list[Annotated[int, Field(ge=0)]] = Field(
        default=[0], min_length=1, description="Seeds; every sampled configuration runs once per seed."
    )

    @field_validator("methods")
    @classmethod
    def _known_methods(cls, names: list[str]) -> list[str]:
        from methods import UnknownMethodError, get_method

        for name in names:
            try:
                get_method(name)
            except UnknownMethodError as error:
                raise ValueError(str(error)) from None
        return names

    @field_validator("settings")
    @classmethod
    def _known_settings(cls, keys: list[str]) -> list[str]:
        from harness.tasks import resolve_setting

        resolved = []
        for key in keys:
            try:
                task, setting = resolve_setting(key)
            except HarnessInputError as error:
                raise ValueError(str(error)) from None
            resolved.append(f"{task.name}/{setting.name}")
        return resolved

    @field_validator("methods", "settings", "seeds")
    @classmethod
    def _unique(cls, values: list) -> list:
        duplicates = sorted({str(v) for v in values if values.count(v) > 1})
        if duplicates:
            raise ValueError(f"duplicate entries: {', '.join(duplicates)}")
        return values


class Train(Strict):
    """Training of one trial. A null value takes the setting's default."""

    steps: PositiveInt | None = Field(None, description="Training steps (generator and discriminator updates).")
    batch_size: PositiveInt | None = Field(None, description="Samples per batch for each player.")
    eval_every: PositiveInt = Field(500, description="Evaluate the task's metrics every this many steps, and at the end.")
    gamma: float | None = Field(
        None, ge=0,
        description="γ of the regularized rules when the search does not sample it; null takes each rule's "
        "default (100 for jare, 10 for the others, the JARE authors' CIFAR-10 values).",
    )
    lr: float | None = Field(None, gt=0, description="Learning rate of both players.")
    lr_g: float | None = Field(None, gt=0, description="Generator learning rate; overrides lr.")
    lr_d: float | None = Field(None, gt=0, description="Discriminator learning rate; overrides lr.")
    loss: Literal["saturating", "nonsaturating"] | None = Field(
        None, description="saturating: L_G = −L_D (zero-sum); nonsaturating: L_G = −log D(G(z))."
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto takes CUDA when available, else CPU.")
    task_options: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Per-task overrides of setting options, e.g. {gaussian: {mu: 4, sigma: 0.2}}.",
    )
    spectrum_every: PositiveInt | None = Field(
        None,
        description="Log the update-field Jacobian's phase and conditioning factors every this many steps "
        "(a multiple of eval_every) and at the end; null logs none.",
    )
    spectrum_eigenvalues: PositiveInt = Field(
        4, description="Eigenvalues ARPACK estimates at each end of the spectrum when a game has over 128 parameters."
    )

    @model_validator(mode="after")
    def _spectrum_at_evaluations(self):
        if self.spectrum_every is not None and self.spectrum_every % self.eval_every:
            raise ValueError(
                f"spectrum_every ({self.spectrum_every}) must be a multiple of eval_every ({self.eval_every}), "
                "because spectra are logged with the evaluation rows"
            )
        return self


class Data(Strict):
    """Where image tasks read their data."""

    root: Path | None = Field(None, description="Folder or .zip of class folders, or a cifar-10-batches-py folder.")
    download: bool = Field(False, description="Download CIFAR-10 into root when it holds no data.")


class Sweep(Strict):
    """How the search runs."""

    num_samples: PositiveInt = Field(4, description="Configurations Optuna samples per (method, setting).")
    max_concurrent_trials: PositiveInt = Field(2, description="Trials running at once.")
    cpus_per_trial: float = Field(1.0, gt=0, description="CPU cores Ray reserves per trial.")
    gpus_per_trial: float = Field(0.0, ge=0, description="GPUs Ray reserves per trial.")
    seed: int = Field(0, ge=0, description="Seed of the Optuna samplers.")
    batch_trials: PositiveInt = Field(
        1,
        description="Trials of a gaussian or mog setting that one Ray trial trains together, vectorized over "
        "trials; 1 gives every trial its own Ray trial. SN-GAN trials always run alone.",
    )
    launcher: Literal["local", "slurm"] = Field(
        "local", description="local: Ray on this machine; slurm: one SLURM job with its own Ray cluster."
    )
    max_failures: int = Field(
        2, ge=0, description="Times Ray Tune retries a trial from its last checkpoint after a worker or node is lost."
    )
    storage_path: Path | None = Field(
        None, description="Folder for Ray Tune's experiment state and trial checkpoints; default <output>/ray."
    )


class Tracking(Strict):
    """Where runs are logged."""

    mlflow_uri: str | None = Field(None, description="MLflow tracking URI; default a SQLite file in the output folder.")
    experiment: str | None = Field(None, description="MLflow experiment name; default the spec name.")
    results_dir: Path | None = Field(
        None, description="Folder of the Parquet results, one file per trial; default <output>/results."
    )


class Slurm(Strict):
    """The SLURM job of ``--launcher slurm``: one task per node, each node one Ray node."""

    partition: str | None = Field(None, description="Partition; default the cluster's default partition.")
    nodes: PositiveInt = Field(1, description="Nodes; the first runs the Ray head and the sweep driver.")
    gpus_per_node: int = Field(0, ge=0, description="GPUs requested on each node and given to Ray.")
    cpus_per_task: PositiveInt = Field(2, description="CPU cores per node given to Ray (one task per node).")
    mem_gb: float | None = Field(None, gt=0, description="Memory per node in GB; default the partition's default.")
    time_min: PositiveInt = Field(24 * 60, description="Time limit of one run of the job, in minutes.")
    max_requeues: int = Field(
        3, ge=0, description="Times the job requeues itself when it reaches its time limit."
    )
    signal_delay_s: PositiveInt = Field(
        120, description="Seconds before the time limit at which SLURM signals the job to requeue."
    )
    job_name: str | None = Field(None, description="SLURM job name; default harness-<spec name>.")
    sbatch_args: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        description="Extra #SBATCH options by long name without dashes, e.g. {account: lab, qos: high}.",
    )
    setup: list[str] = Field(
        default_factory=list, description="Shell lines run before the job starts, e.g. module loads."
    )


class SweepSpec(Strict):
    """A sweep: the grid, the search space, training, data, the search engine and tracking."""

    name: str = Field(description="Sweep name; names the output folder and the MLflow experiment.")
    description: str = Field("", description="Free text shown in reports.")
    grid: Grid
    search: dict[str, Distribution] = Field(
        default_factory=dict, description=f"Distributions sampled by Optuna; keys from {', '.join(SEARCHABLE)}."
    )
    train: Train = Field(default_factory=Train)
    data: Data = Field(default_factory=Data)
    sweep: Sweep = Field(default_factory=Sweep)
    tracking: Tracking = Field(default_factory=Tracking)
    slurm: Slurm = Field(default_factory=Slurm)

    @field_validator("name")
    @classmethod
    def _safe_name(cls, name: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
            raise ValueError("must start with a letter or digit and contain only letters, digits, '_', '.', '-'")
        return name

    @field_validator("search")
    @classmethod
    def _searchable(cls, space: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(space) - set(SEARCHABLE))
        if unknown:
            raise ValueError(f"cannot search {', '.join(unknown)}; searchable: {', '.join(SEARCHABLE)}")
        if "lr" in space and ({"lr_g", "lr_d"} & set(space)):
            raise ValueError("search either lr or lr_g/lr_d, not both")
        return space

    @model_validator(mode="after")
    def _known_task_options(self):
        from harness.tasks import get_task, resolve_setting

        grid_tasks = {resolve_setting(key)[0].name for key in self.grid.settings}
        for task_name, options in self.train.task_options.items():
            where = f"train.task_options.{task_name}"
            try:
                task = get_task(task_name)
            except HarnessInputError as error:
                raise ValueError(f"{where}: {error}") from None
            if task.name not in grid_tasks:
                raise ValueError(f"{where}: task {task_name!r} is not in grid.settings")
            for key in self.grid.settings:
                owner, setting = resolve_setting(key)
                if owner is task:
                    try:
                        task.validate_options(setting, options)
                    except HarnessInputError as error:
                        raise ValueError(f"{where}: {error}") from None
        return self

    @model_validator(mode="after")
    def _spectrum_needs_single_trials(self):
        if self.train.spectrum_every is not None and self.sweep.batch_trials > 1:
            raise ValueError(
                f"train.spectrum_every is set but sweep.batch_trials is {self.sweep.batch_trials}; spectra are "
                "computed only for trials that train alone, so set sweep.batch_trials to 1"
            )
        return self

    @model_validator(mode="after")
    def _slurm_resources_fit_trials(self):
        if self.sweep.launcher != "slurm":
            return self
        if self.sweep.gpus_per_trial > self.slurm.gpus_per_node:
            raise ValueError(
                f"sweep.gpus_per_trial is {self.sweep.gpus_per_trial} but slurm.gpus_per_node is "
                f"{self.slurm.gpus_per_node}, so no trial could start; request GPUs with slurm.gpus_per_node"
            )
        if self.sweep.cpus_per_trial > self.slurm.cpus_per_task:
            raise ValueError(
                f"sweep.cpus_per_trial is {self.sweep.cpus_per_trial} but slurm.cpus_per_task is "
                f"{self.slurm.cpus_per_task}, so no trial could start; raise slurm.cpus_per_task"
            )
        return self

    @model_validator(mode="after")
    def _data_for_image_tasks(self):
        from harness.tasks import resolve_setting

        for key in self.grid.settings:
            task, _ = resolve_setting(key)
            if task.needs_data and self.data.root is None:
                raise ValueError(
                    f"grid.settings: {key} needs image data but data.root is not set; "
                    "set it in the spec or with --set data.root=PATH"
                )
        return self


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``a.b.c=VALUE`` into the path and the YAML-parsed value."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise HarnessInputError(f"invalid --set {text!r}: expected KEY=VALUE, e.g. --set train.steps=200")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as error:
        raise HarnessInputError(f"invalid --set {text!r}: the value is not valid YAML ({error})") from None
    return key.strip().split("."), value


def apply_override(raw: dict[str, Any], path: list[str], value: Any) -> None:
    node = raw
    for depth, part in enumerate(path[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            where = ".".join(path[: depth + 1])
            raise HarnessInputError(f"invalid --set {'.'.join(path)}: {where} is not a mapping")
        node = child
    node[path[-1]] = value


def load_spec(path: Path, overrides: list[str] = ()) -> SweepSpec:
    """Read, override and validate a sweep spec; raise ``HarnessInputError`` naming the problem."""
    if not path.is_file():
        raise HarnessInputError(f"sweep spec not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise HarnessInputError(f"{path}: invalid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise HarnessInputError(f"{path}: a sweep spec must be a YAML mapping, found {type(raw).__name__}")

    for text in overrides:
        keys, value = parse_override(text)
        apply_override(raw, keys, value)

    return validate_spec(raw, source=str(path))


def validate_spec(raw: dict[str, Any], source: str = "spec") -> SweepSpec:
    try:
        return SweepSpec.model_validate(raw)
    except ValidationError as error:
        raise HarnessInputError(format_validation_error(error, source)) from None
    except HarnessInputError as error:
        raise HarnessInputError(f"{source}: {error}") from None


def format_validation_error(error: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid sweep spec"]
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"] if not _is_union_tag(part)) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            allowed = _allowed_keys(item["loc"][:-1])
            message = f"unknown key; allowed keys here: {', '.join(allowed)}" if allowed else "unknown key"
        lines.append(f"  {where}: {message}")
    return "\n".join(lines)


def _allowed_keys(loc: tuple) -> list[str]:
    """Return the field names of the schema model at ``loc``, or [] where it is not a model."""
    model: Any = SweepSpec
    for part in loc:
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        model = field.annotation
    return list(getattr(model, "model_fields", {}))


def _is_union_tag(part: Any) -> bool:
    return part in ("loguniform", "uniform", "choice")


def spec_to_yaml(spec: SweepSpec) -> str:
    return yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False)
