"""Pseudonyms (keyed hashes of patient ids) and seeded patient-level train/val/test splits."""

import hashlib
import hmac
import os

from medtrans.shared.dataset import SPLITS
from medtrans.shared.seeding import rng
from medtrans.shared.stage import StageInputError

KEY_ENV = "MEDTRANS_PSEUDONYM_KEY"


class PseudonymKeyMissing(StageInputError):
    """Real data without $MEDTRANS_PSEUDONYM_KEY: a key derived from the study name and seed
    can be guessed, and with it every pseudonym reversed by trying candidate patient ids."""


def pseudonym_key(study_name: str, seed: int, phantom: bool) -> bytes:
    """The secret of the keyed hash: $MEDTRANS_PSEUDONYM_KEY. Only the embedded phantom (fake
    ids) may do without it, with a key derived from the study name and seed; real data without
    it is refused with how to make one."""
    secret = os.environ.get(KEY_ENV)
    if secret:
        return secret.encode()
    if not phantom:
        raise PseudonymKeyMissing(
            f"study {study_name}: real data needs a secret pseudonym key; set ${KEY_ENV}, e.g. "
            "`export MEDTRANS_PSEUDONYM_KEY=$(python3 -c 'import secrets; print(secrets.token_hex(32))')`, "
            "and keep it outside the run folder (a secrets store or a file only you can read): "
            "whoever has it can re-identify patients, and the same key gives the same pseudonyms"
        )
    return hashlib.sha256(f"medtrans-pseudonym:{study_name}:{seed}".encode()).digest()


def key_id(key: bytes) -> str:
    """A public fingerprint of the key (recorded in the config digest so a new key reruns)."""
    return hashlib.sha256(b"medtrans-key-id:" + key).hexdigest()[:12]


def pseudonym(key: bytes, patient_id: str) -> str:
    """`p` + 10 hex digits of HMAC-SHA256(key, patient id): stable, not reversible without the key."""
    return "p" + hmac.new(key, patient_id.encode(), hashlib.sha256).hexdigest()[:10]


def split_counts(n: int, fractions: tuple[float, float, float]) -> dict[str, int]:
    """Patients per split: at least one in val and test (when n >= 3), the rest in train."""
    if n < 3:
        return {"train": n, "val": 0, "test": 0}
    val = max(1, round(n * fractions[1]))
    test = max(1, round(n * fractions[2]))
    while val + test > n - 1:
        if val >= test and val > 1:
            val -= 1
        elif test > 1:
            test -= 1
        else:
            break
    return {"train": n - val - test, "val": val, "test": test}


def assign_splits(
    patients: dict[str, list[str]], fractions: tuple[float, float, float], seed: int, task: str
) -> dict[str, str]:
    """Split every domain's patients by patient, seeded. A patient seen in several domains keeps
    one split (the first domain decides), so no patient is ever in two splits."""
    out: dict[str, str] = {}
    for domain in patients:
        pats = sorted(set(patients[domain]))
        target = split_counts(len(pats), fractions)
        have = {s: sum(1 for p in pats if out.get(p) == s) for s in SPLITS}
        free = [p for p in pats if p not in out]
        order = rng(seed, "split", task, domain).permutation(len(free))
        slots = [s for s in ("test", "val", "train") for _ in range(max(0, target[s] - have[s]))]
        slots += ["train"] * max(0, len(free) - len(slots))
        for i, idx in enumerate(order):
            out[free[idx]] = slots[i]
    return out
