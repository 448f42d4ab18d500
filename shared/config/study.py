"""The study: name, seed, profile, tasks and every stage's settings."""

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from medtrans.shared.config.base import Config
from medtrans.shared.config.calibrate import CalibrateConfig
from medtrans.shared.config.data import DataSource
from medtrans.shared.config.metrics import MetricsConfig
from medtrans.shared.config.preprocess import PreprocessConfig
from medtrans.shared.config.report import ReportConfig
from medtrans.shared.config.resources import ResourcesConfig
from medtrans.shared.config.segment import SegmentConfig
from medtrans.shared.config.translate import TranslateConfig

NAME = re.compile(r"^[a-z][a-z0-9_-]*$")


class StudyError(ValueError):
    """A study file that cannot be used; the message is one line naming the field."""


class Domain(Config):
    """One side of a translation task."""

    name: str
    modality: Literal["MR", "CT"]

    @field_validator("name")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not NAME.match(v):
            raise ValueError("must be lower-case letters, digits, '-' or '_'")
        return v


class TaskConfig(Config):
    """A translation task: source domain -> target domain, the structures that must survive."""

    source: Domain
    target: Domain
    structures: tuple[str, ...] = Field(min_length=1)
    plane: Literal["axial", "sagittal", "coronal"] = "axial"
    data: DataSource


class StudyConfig(Config):
    """A whole study; every random choice is derived from `seed`."""

    name: str
    seed: int = 1338
    profile: Literal["demo", "paper"]
    device: Literal["auto", "cpu", "cuda"] = "auto"
    tasks: dict[str, TaskConfig] = Field(min_length=1)
    preprocess: PreprocessConfig = PreprocessConfig()
    translate: TranslateConfig = TranslateConfig()
    segment: SegmentConfig = SegmentConfig()
    metrics: MetricsConfig = MetricsConfig()
    calibrate: CalibrateConfig = CalibrateConfig()
    report: ReportConfig = ReportConfig()
    resources: ResourcesConfig = ResourcesConfig()  # workflow jobs only; in no digest

    @field_validator("name")
    @classmethod
    def _name_slug(cls, v: str) -> str:
        if not NAME.match(v):
            raise ValueError("must be lower-case letters, digits, '-' or '_'")
        return v

    @field_validator("tasks")
    @classmethod
    def _task_slugs(cls, v: dict[str, TaskConfig]) -> dict[str, TaskConfig]:
        for key in v:
            if not NAME.match(key):
                raise ValueError(f"task name {key!r} must be lower-case letters, digits, '-' or '_'")
        return v

    @model_validator(mode="after")
    def _sampled_tasks_exist(self) -> "StudyConfig":
        unknown = [t for t in self.preprocess.sample if t not in self.tasks]
        if unknown:
            raise ValueError(
                f"preprocess.sample names unknown task(s) {', '.join(unknown)}; "
                f"the study's tasks are {', '.join(self.tasks)}"
            )
        return self

    def part(self, *keys: str) -> dict[str, Any]:
        """A JSON-ready slice of the study (for config digests): `part("translate", "cyclegan")`.
        `resources` is left out: what a job asks a scheduler for does not change its outputs."""
        data: Any = self.model_dump(mode="json", exclude={"resources"})
        for key in keys:
            data = data[key]
        return data


_UNION_TAGS = {"phantom", "dbc", "spine", "folder"}


def _field_path(loc: tuple[Any, ...]) -> str:
    """Dotted field path; drops the discriminator tag pydantic inserts after `data`."""
    parts = [
        str(p) for i, p in enumerate(loc) if not (i and loc[i - 1] == "data" and p in _UNION_TAGS)
    ]
    return ".".join(parts) or "(top level)"


def _one_line(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    field = _field_path(first["loc"])
    kind = first["type"]
    if kind == "extra_forbidden":
        what = "unknown key (remove it or check its spelling)"
    elif kind == "missing":
        what = "missing required field"
    else:
        what = first["msg"]
    more = len(err.errors()) - 1
    tail = f" (+{more} more)" if more else ""
    return f"{source}: {field}: {what}{tail}"


def parse_study(data: Any, source: str = "<study>") -> StudyConfig:
    """Validate a loaded YAML document into a `StudyConfig`."""
    if not isinstance(data, dict):
        raise StudyError(f"{source}: (top level): a study must be a mapping of keys to values")
    try:
        return StudyConfig.model_validate(data)
    except ValidationError as err:
        raise StudyError(_one_line(err, source)) from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (plain YAML keeps the last
    one silently, so a study could run with a setting its author thought was overridden)."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            try:
                repeated = key in seen
            except TypeError:  # an unhashable key: the base loader says why
                continue
            if repeated:
                raise StudyError(
                    f"line {line}: duplicate key {key!r} (first given on line {seen[key]}); keep one"
                )
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _yaml_reason(err: yaml.YAMLError) -> str:
    """`line N: problem (context)`, as far as PyYAML says."""
    mark = getattr(err, "problem_mark", None)
    where = f" line {mark.line + 1}, column {mark.column + 1}:" if mark else ""
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    context = getattr(err, "context", None)
    return f"{where} not valid YAML: {problem}" + (f" ({context})" if context else "")


def load_study(path: str | Path) -> StudyConfig:
    """Read and validate a study file (duplicate keys refused)."""
    path = Path(path)
    if not path.is_file():
        raise StudyError(f"{path}: no such study file (see studies/ for examples)")
    try:
        data = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader
    except StudyError as err:
        raise StudyError(f"{path}: {err}") from None
    except yaml.YAMLError as err:
        raise StudyError(f"{path}:{_yaml_reason(err)}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise StudyError(f"{path}: unreadable study file ({err.__class__.__name__})") from None
    return parse_study(data, str(path))
