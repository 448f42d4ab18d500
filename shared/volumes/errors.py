"""The one error every reader raises for a file it cannot use."""

from pathlib import Path


class VolumeError(ValueError):
    """A file (or series folder) that cannot be used; `file` is the offending path."""

    def __init__(self, file: Path | str, reason: str):
        super().__init__(f"{file}: {reason}")
        self.file = str(file)
        self.reason = reason


def why(err: BaseException, path: Path | str) -> str:
    """A library's exception as a short reason, without repeating the file's full path."""
    text = " ".join(str(err).replace(str(path), Path(path).name).split())
    return f"{type(err).__name__}: {text[:160]}" if text else type(err).__name__
