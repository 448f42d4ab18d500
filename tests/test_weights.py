"""Weights: located offline, hash-checked against the name and the lock, fetched only by `fetch`."""

import hashlib
import json

import pytest
import torch

from medtrans.stages.metrics import weights as W
from medtrans.stages.metrics.inception import load_inception


def named_by_hash(folder, data: bytes, stem: str = "net") -> tuple:
    """A file whose name carries its own sha256 prefix, as the standard file's does."""
    sha = hashlib.sha256(data).hexdigest()
    src = folder / f"{stem}-{sha[:8]}.pth"
    src.write_bytes(data)
    return src, sha


def test_weights_dir_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv(W.ENV_DIR, str(tmp_path))
    assert W.weights_dir() == tmp_path
    monkeypatch.delenv(W.ENV_DIR)
    monkeypatch.chdir(tmp_path)
    assert W.weights_dir() == tmp_path / "weights"


def test_missing_standard_file_names_path_and_make_weights(tmp_path, monkeypatch):
    with pytest.raises(W.WeightsMissing) as err:
        W.locate_inception(tmp_path)
    assert err.value.expected == tmp_path / W.STANDARD_NAME
    assert str(tmp_path / W.STANDARD_NAME) in str(err.value) and "make weights" in str(err.value)
    monkeypatch.setenv(W.ENV_DIR, str(tmp_path / "elsewhere"))
    with pytest.raises(W.WeightsMissing) as err:
        W.locate_inception()
    assert err.value.expected == tmp_path / "elsewhere" / W.STANDARD_NAME


def test_wrong_hash_is_refused(tmp_path):
    (tmp_path / W.STANDARD_NAME).write_bytes(b"not the inception weights")
    with pytest.raises(W.WeightsMismatch, match="does not start with 6726825d"):
        W.locate_inception(tmp_path, lock=tmp_path / "lock.json")


def test_lock_pin_is_checked_before_the_prefix(tmp_path):
    src, sha = named_by_hash(tmp_path, b"payload")
    lock = tmp_path / "lock.json"
    W.record_lock(src.name, sha, "file://x", 7, lock)
    W.check_digest(src.name, sha, lock)  # pinned and prefix both fine
    wrong = sha[:8] + "0" * 56  # same prefix, different full hash: only the pin catches it
    with pytest.raises(W.WeightsMismatch, match="differs from the pin"):
        W.check_digest(src.name, wrong, lock)
    with pytest.raises(W.WeightsMismatch, match="already pins"):
        W.record_lock(src.name, wrong, "file://x", 7, lock)


def test_custom_file_is_recorded_not_standard(tmp_path):
    with pytest.raises(FileNotFoundError, match="custom"):
        W.locate_inception(custom=tmp_path / "radimagenet.pth")
    p = tmp_path / "radimagenet.pth"
    p.write_bytes(b"abc")
    f = W.locate_inception(custom=p)
    assert f.standard is False and f.sha256 == hashlib.sha256(b"abc").hexdigest()


def test_load_inception_refuses_other_networks_and_changed_files(tmp_path):
    p = tmp_path / "other.pth"
    torch.save({"layer.weight": torch.zeros(2)}, p)
    with pytest.raises(ValueError, match="not an FID Inception"):
        load_inception(W.locate_inception(custom=p))
    f = W.locate_inception(custom=p)
    torch.save({"layer.weight": torch.ones(3)}, p)
    with pytest.raises(RuntimeError, match="changed since it was verified"):
        load_inception(f)


def test_fetch_downloads_verifies_and_pins(tmp_path):
    src, sha = named_by_hash(tmp_path, b"weights bytes" * 1000)
    dest, lock = tmp_path / "weights", tmp_path / "weights.lock.json"
    f = W.fetch(dest, src.as_uri(), name=src.name, lock=lock)
    assert f.path == dest / src.name and f.path.read_bytes() == src.read_bytes() and f.sha256 == sha
    pin = json.loads(lock.read_text())["files"][src.name]
    assert pin == {"sha256": sha, "size": 13000, "url": src.as_uri()}
    src.unlink()  # a verified copy is there: no second download
    assert W.fetch(dest, src.as_uri(), name=src.name, lock=lock).sha256 == sha
    assert not list(dest.glob("*.partial"))


def test_fetch_refuses_a_bad_download_and_leaves_nothing(tmp_path):
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"tampered")
    dest, lock = tmp_path / "weights", tmp_path / "lock.json"
    with pytest.raises(W.WeightsMismatch):
        W.fetch(dest, bad.as_uri(), name="net-deadbeef.pth", lock=lock)
    assert list(dest.iterdir()) == [] and not lock.exists()


def test_cli_fetch_and_verify(tmp_path):
    from typer.testing import CliRunner

    def run(*args: str):
        return CliRunner().invoke(W.app, list(args))

    lock = tmp_path / "lock.json"
    dest = tmp_path / "weights"
    missing = run("verify", "--dir", str(dest), "--lock", str(lock))
    assert missing.exit_code == 1 and "make weights" in missing.stderr
    (dest).mkdir()
    (dest / W.STANDARD_NAME).write_bytes(b"junk")
    assert run("verify", "--dir", str(dest), "--lock", str(lock)).exit_code == 2
    src = tmp_path / "junk.bin"
    src.write_bytes(b"junk")
    (dest / W.STANDARD_NAME).unlink()
    assert run("fetch", "--dir", str(dest), "--url", src.as_uri(), "--lock", str(lock)).exit_code == 2
    assert not (dest / W.STANDARD_NAME).exists()


def test_committed_lock_file_is_valid():
    files = W.read_lock()
    for name, pin in files.items():
        assert len(pin["sha256"]) == 64 and pin["sha256"].startswith(W.name_prefix(name))


def test_module_entry_point_runs_offline(tmp_path):
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "medtrans.stages.metrics.weights", "verify", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1 and "make weights" in out.stderr and str(tmp_path) in out.stderr


# torchvision's published VGG19 (VGG19_Weights.IMAGENET1K_V1): the sha256 and size that public
# weight manifests record for https://download.pytorch.org/models/vgg19-dcbb9e9d.pth
VGG19_SHA256 = "dcbb9e9dad569fff7a846263a77324fc34978fea2bfb039c012d710e1776ae44"


def test_vgg19_is_pinned_to_the_published_hash():
    """`make weights` checks SPADE's VGG19 against its full sha256, not only the name's prefix."""
    (name,) = W.ALSO_FETCHED
    assert W.read_lock()[name] == {"sha256": VGG19_SHA256, "size": 574673361, "url": W.ALSO_FETCHED[name]}
    W.check_digest(name, VGG19_SHA256)
    with pytest.raises(W.WeightsMismatch, match="differs from the pin"):
        W.check_digest(name, "dcbb9e9d" + "0" * 56)  # the name's prefix alone would pass
