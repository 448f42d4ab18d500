"""Study files: YAML validated into typed config objects (pydantic v2).

`load_study(path)` is the one entry point; a bad file raises `StudyError` with one line that
names the field and what is allowed.
"""

from medtrans.shared.config.study import (
    Domain,
    StudyConfig,
    StudyError,
    TaskConfig,
    load_study,
    parse_study,
)

__all__ = ["Domain", "StudyConfig", "StudyError", "TaskConfig", "load_study", "parse_study"]
