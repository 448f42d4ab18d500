"""The slice index (`preprocess/<task>/index.csv`): the contract between preprocess and every
later stage. One row per 2D slice; masks are label maps where value k (1..K) is the k-th
structure of the task (0 background)."""

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from medtrans.shared.layout import RunLayout

INDEX = "index.csv"
COLUMNS = (
    "slice_id",  # unique, pseudonymous, file-name safe: <patient>_<position>
    "patient",  # keyed hash of the patient id
    "domain",  # domain name from the study
    "role",  # source | target
    "split",  # train | val | test
    "position",  # slice index in the canonical volume
    "image",  # relative path of the 8-bit PNG
    "mask",  # relative path of the label PNG ('' if none)
    "structures",  # '|'-joined structures present in the mask
)
FOREGROUND = "foreground"  # folder of the foreground masks (MaskGAN's, computed per volume)
# columns an index may lack (read as '' in every row); preprocess writes them after COLUMNS:
# foreground = relative path of the foreground PNG (0/255, computed per volume; '' if none)
OPTIONAL = ("foreground",)
SPLITS = ("train", "val", "test")
ROLES = ("source", "target")


class IndexError_(ValueError):
    """A slice index that breaks the contract (names the file)."""


@dataclass(frozen=True)
class SliceIndex:
    """The slices of one task with their files, read from a preprocess output folder."""

    folder: Path
    table: pd.DataFrame

    @classmethod
    def load(cls, folder: Path) -> "SliceIndex":
        path = Path(folder) / INDEX
        if not path.is_file():
            raise IndexError_(f"{path}: missing; run `medtrans preprocess` first")
        text = {"slice_id": str, "patient": str, "mask": str, "foreground": str}
        table = pd.read_csv(path, dtype=text, keep_default_na=False)
        for col in OPTIONAL:  # an index written without them: none shipped
            if col not in table.columns:
                table[col] = ""
        missing = [c for c in COLUMNS if c not in table.columns]
        if missing:
            raise IndexError_(f"{path}: missing columns {missing}")
        return cls(Path(folder), table)

    @classmethod
    def for_task(cls, layout: RunLayout, task: str) -> "SliceIndex":
        return cls.load(layout.preprocess(task))

    def select(self, role: str, split: str) -> pd.DataFrame:
        """Rows of one role (source/target) and split, in slice_id order."""
        rows = self.table[(self.table.role == role) & (self.table.split == split)]
        return rows.sort_values("slice_id").reset_index(drop=True)

    def path(self, rel: str) -> Path:
        return self.folder / rel
