"""GPU choice for jobs that Snakemake runs side by side on one machine: each GPU job holds an
exclusive lock on one device for its lifetime (Snakemake's `--resources gpu=N` bounds how many
run at once; it does not say which device). Under SLURM the scheduler has already chosen.
"""

import fcntl
import os
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path


def visible_devices() -> list[str]:
    """The device ids this machine offers: CUDA_VISIBLE_DEVICES if set, else /dev/nvidiaN."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [d for d in env.split(",") if d.strip()]
    found = [p.name[len("nvidia") :] for p in Path("/dev").glob("nvidia[0-9]*")]
    return sorted(found, key=int)


def host_devices() -> list[str]:
    """Host indices of the job's devices, for a container engine that sees every GPU: under
    SLURM CUDA_VISIBLE_DEVICES may be renumbered from 0, SLURM_STEP_GPUS/SLURM_JOB_GPUS are not."""
    for key in ("SLURM_STEP_GPUS", "SLURM_JOB_GPUS"):
        if os.environ.get(key):
            return [d for d in os.environ[key].split(",") if d.strip()]
    return visible_devices()


def scheduler_assigned() -> bool:
    """SLURM (and other schedulers) set the job's devices themselves."""
    return "SLURM_JOB_ID" in os.environ


@contextmanager
def claim(count: int, lock_dir: Path | None = None, poll: float = 2.0):
    """Yield `count` device ids locked for this job; wait while all are taken."""
    if count == 0:
        yield []
        return
    devices = visible_devices()
    if len(devices) < count:
        raise RuntimeError(f"job asks for {count} GPU(s) but this machine shows {len(devices)} ({devices})")
    lock_dir = lock_dir or Path(tempfile.gettempdir()) / f"medtrans-gpu-locks-{os.getuid()}"
    lock_dir.mkdir(parents=True, exist_ok=True)
    held: list[tuple[str, object]] = []
    try:
        while len(held) < count:
            for dev in devices:
                if len(held) == count or any(d == dev for d, _ in held):
                    continue
                handle = open(lock_dir / f"gpu{dev}.lock", "w")  # noqa: SIM115 (held until release)
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    held.append((dev, handle))
                except BlockingIOError:
                    handle.close()
            if len(held) < count:
                time.sleep(poll)
        yield [d for d, _ in held]
    finally:
        for _, handle in held:
            handle.close()
