"""What produced the numbers: study digest, code versions, software, weights digests.

Only named fields of the upstream manifests are copied (never their free-form config or extra
wholesale), so nothing that preprocessing kept private, such as raw file names, can leak into
the report.
"""

import re

import pandas as pd

from medtrans.shared.hashing import sha256_file
from medtrans.shared.layout import MANIFEST
from medtrans.stages.report.gather import RunData

HEX = re.compile(r"^[0-9a-f]{16,128}$")


def inputs_frame(run: RunData) -> pd.DataFrame:
    """One row per upstream output folder: stage, unit, versions, config digest, manifest sha256."""
    rows = []
    for label, folder, m in run.manifests():
        rows.append(
            {
                "output": label,
                "stage_version": m.stage_version,
                "code_version": m.code_version,
                "config_digest": m.config_digest[:16],
                "manifest_sha256": sha256_file(folder / MANIFEST)[:16],
                "finished": m.finished,
                "seconds": m.extra.get("seconds", ""),
            }
        )
    return pd.DataFrame(rows)


def environment_frame(run: RunData) -> pd.DataFrame:
    """Software and hardware per upstream output: python, torch, CUDA, GPU, container image."""
    rows = []
    for label, _, m in run.manifests():
        env = m.environment
        rows.append(
            {
                "output": label,
                "python": env.get("python", ""),
                "torch": env.get("torch", ""),
                "cuda": env.get("cuda") or "",
                "gpu": env.get("gpu") or "",
                "container image": env.get("image_id") or "",
            }
        )
    return pd.DataFrame(rows)


def packages_frame(run: RunData) -> pd.DataFrame:
    """Each package version seen in the upstream manifests and the outputs that used it."""
    seen: dict[tuple[str, str], list[str]] = {}
    for label, _, m in run.manifests():
        for name, version in sorted((m.environment.get("packages") or {}).items()):
            seen.setdefault((str(name), str(version)), []).append(label)
    rows = [
        {"package": n, "version": v, "used by": ", ".join(sorted(set(lbl.split("/")[0] for lbl in labels)))}
        for (n, v), labels in sorted(seen.items())
    ]
    return pd.DataFrame(rows, columns=["package", "version", "used by"])


def _digests(obj, path: str = ""):
    """(key path, value) of every hex-digest string under a key naming a digest or weights."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _digests(v, f"{path}.{k}" if path else str(k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _digests(v, f"{path}[{i}]")
    elif isinstance(obj, str) and HEX.match(obj) and re.search(r"sha|digest|weight", path, re.I):
        yield path, obj


def weights_frame(run: RunData) -> pd.DataFrame:
    """Network digests from metrics.csv (network_sha256) and digests the stages recorded."""
    rows = []
    for name, t in run.tasks.items():
        if t.metrics is not None and "network_sha256" in t.metrics.table:
            tab = t.metrics.table
            for sha, grp in tab[tab["network_sha256"].fillna("") != ""].groupby("network_sha256"):
                metrics = ", ".join(dict.fromkeys(grp["metric"]))
                rows.append({"where": f"metrics/{name}", "what": f"network of {metrics}", "sha256": sha})
    for label, _, m in run.manifests():
        if label.startswith("preprocess/"):
            continue  # preprocessing keeps its own records; nothing of it is copied
        for key, value in _digests(m.extra):
            rows.append({"where": label, "what": key, "sha256": value})
    return pd.DataFrame(rows, columns=["where", "what", "sha256"])
