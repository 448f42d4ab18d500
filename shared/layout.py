"""The run folder: where every stage's output for a unit of work lives."""

from dataclasses import dataclass
from pathlib import Path

MANIFEST = "manifest.json"
DEFAULT_RUNS = Path("runs")


@dataclass(frozen=True)
class RunLayout:
    """Paths inside one run folder (`runs/<study>/` locally, the mounted volume in a container)."""

    root: Path

    @classmethod
    def for_study(cls, study_name: str, run: str | Path | None = None) -> "RunLayout":
        return cls(Path(run) if run else DEFAULT_RUNS / study_name)

    def preprocess(self, task: str) -> Path:
        return self.root / "preprocess" / task

    def translate(self, task: str, model: str) -> Path:
        return self.root / "translate" / task / model

    def segment(self, task: str) -> Path:
        return self.root / "segment" / task

    def metrics(self, task: str) -> Path:
        return self.root / "metrics" / task

    def calibrate(self, task: str) -> Path:
        return self.root / "calibrate" / task

    def report(self) -> Path:
        return self.root / "report"

    def cache(self, *parts: str) -> Path:
        """Caches that are safe to delete (features by image digest); never part of a manifest."""
        return self.root.joinpath(".cache", *parts)

    def rel(self, path: Path) -> str:
        """A path relative to the run root, as manifests record it (the run folder can move)."""
        return Path(path).resolve().relative_to(self.root.resolve()).as_posix()
