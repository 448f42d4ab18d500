"""Units side by side on one machine: each unit as its own `medtrans <stage> --task T [model]`
process (the command a container or a workflow job runs), N at a time.

- Threads: each unit gets its stage's `resources.<stage>.threads` (OMP_NUM_THREADS and torch's
  thread count in the child), the same whatever N is, so a run's numbers never depend on N;
  units start only while the running ones' threads fit in the machine's cores (a unit alone
  always starts).
- GPUs: a unit of a GPU stage starts on the GPU with the most free budget where its
  `resources.<stage>.gpu_mem_mb` still fits (a GPU's budget: 90% of its memory); several units
  share a GPU that way (CUDA_VISIBLE_DEVICES names the one it gets).
- One log per unit (`<run>/.logs/<unit>.log`, a dot folder: no unit's output) and one progress
  line per unit on the console; a failing unit stops nothing else, and every failure is
  reported when the batch ends.
"""

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from medtrans.shared.catalogue import stages as catalogue
from medtrans.shared.config.resources import JobResources
from medtrans.shared.log import get_logger

log = get_logger("medtrans.runner")
LOGS = ".logs"
GPU_SHARE = 0.9  # of a GPU's memory the units on it may claim together (the rest: CUDA contexts)


@dataclass(frozen=True)
class Job:
    """One child process: the unit(s) one stage command builds."""

    label: str
    argv: tuple[str, ...]  # after `medtrans`
    threads: int
    gpu_mem_mb: int | None  # None: no GPU


@dataclass
class Finished:
    label: str
    code: int
    seconds: float
    log: Path


def stage_args(stage: str, name: tuple[str, ...]) -> tuple[str, ...]:
    """`medtrans` arguments that build the unit `stage/name...`: a per-translator stage's
    unit is (task, model), a per-task stage's (task, ...), a study-wide one's ()."""
    if catalogue.stage(stage).per_translator:
        return (stage, name[1], "--task", name[0])
    return (stage, "--task", name[0]) if name else (stage,)


def job_label(head: tuple[str, ...]) -> str:
    """`translate/breast/cyclegan`, `segment/spine`, `report`: what the command builds."""
    if len(head) == 4:
        return f"{head[0]}/{head[3]}/{head[1]}"
    return f"{head[0]}/{head[2]}" if len(head) == 3 else head[0]


def jobs_for(units, resources, study: Path, run: Path, force: bool, gpu: bool) -> list[Job]:
    """One Job per distinct stage command (units one command builds together run once)."""
    out: dict[tuple[str, ...], Job] = {}
    for u in units:
        head = stage_args(u.stage, u.name)
        if head in out:
            continue
        res: JobResources = resources.for_unit(u.stage, u.name[1] if len(u.name) > 1 else None)
        uses_gpu = gpu and catalogue.stage(u.stage).gpu and res.gpu_mem_mb > 0
        argv = (*head, "--study", str(study), "--run", str(run), *(("--force",) if force else ()))
        out[head] = Job(job_label(head), argv, res.threads, res.gpu_mem_mb if uses_gpu else None)
    return list(out.values())


def place(need_mb: int, free_mb: dict[int, int]) -> int | None:
    """The GPU (index) with the most free budget that fits `need_mb`, or None."""
    fits = [(mb, -i) for i, mb in free_mb.items() if mb >= need_mb]
    return -max(fits)[1] if fits else None


def gpu_budgets() -> dict[int, int]:
    """Each visible GPU's index -> the MiB its units may take together."""
    import torch

    return {
        i: int(torch.cuda.get_device_properties(i).total_memory / 2**20 * GPU_SHARE)
        for i in range(torch.cuda.device_count())
    }


def child_env(threads: int, gpu: int | None) -> dict[str, str]:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    env.setdefault("TQDM_MININTERVAL", "5")  # the progress bar goes to the log: a line per 5 s
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = str(gpu)
    return env


def medtrans_argv() -> list[str]:
    """This Python's `medtrans` (the command a container runs), or the module where none is."""
    exe = Path(sys.executable).parent / "medtrans"
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "medtrans.stages.cli"]


@dataclass
class _Running:
    job: Job
    proc: subprocess.Popen
    log: Path
    started: float
    gpu: int | None


@dataclass
class Pool:
    """Runs jobs, `jobs` at a time within `cores` threads and the GPUs' memory budgets."""

    jobs: int
    cores: int
    logs: Path
    gpus: dict[int, int] = field(default_factory=dict)  # index -> free MiB
    poll_s: float = 0.2
    status_every_s: float = 30.0

    def run(self, batch: list[Job]) -> list[Finished]:
        self.logs.mkdir(parents=True, exist_ok=True)
        waiting, running, done = list(batch), [], []
        last_status = time.monotonic()
        while waiting or running:
            self._start_what_fits(waiting, running)
            time.sleep(self.poll_s)
            for r in [r for r in running if r.proc.poll() is not None]:
                running.remove(r)
                done.append(self._finish(r))
            if running and time.monotonic() - last_status >= self.status_every_s:
                for r in running:
                    print(progress_line(r.job.label, time.monotonic() - r.started, r.log), flush=True)
                last_status = time.monotonic()
        return done

    def _start_what_fits(self, waiting: list[Job], running: list[_Running]) -> None:
        for job in list(waiting):
            if len(running) >= self.jobs:
                return
            used = sum(r.job.threads for r in running)
            if running and used + job.threads > self.cores:
                continue
            gpu = None
            if job.gpu_mem_mb is not None and self.gpus:
                gpu = place(job.gpu_mem_mb, self.gpus)
                if gpu is None and running:
                    continue
                gpu = gpu if gpu is not None else max(self.gpus, key=self.gpus.get)
                self.gpus[gpu] -= job.gpu_mem_mb
            waiting.remove(job)
            running.append(self._start(job, gpu))

    def _start(self, job: Job, gpu: int | None) -> _Running:
        path = self.logs / (job.label.replace("/", "-") + ".log")
        argv = [*medtrans_argv(), *job.argv]
        with open(path, "w") as fh:
            fh.write("$ " + " ".join(argv) + "\n")
            fh.flush()
            env = child_env(job.threads, gpu)
            proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, env=env)
        where = f", GPU {gpu}" if gpu is not None else ""
        print(f"  start  {job.label} ({job.threads} thread(s){where}) -> {path}", flush=True)
        return _Running(job, proc, path, time.monotonic(), gpu)

    def _finish(self, r: _Running) -> Finished:
        if r.gpu is not None:
            self.gpus[r.gpu] += r.job.gpu_mem_mb or 0
        seconds = time.monotonic() - r.started
        code = r.proc.returncode
        word = "done  " if code == 0 else f"FAILED (exit {code})"
        print(f"  {word} {r.job.label} ({seconds:.1f}s)", flush=True)
        return Finished(r.job.label, code, seconds, r.log)


def progress_line(label: str, seconds: float, path: Path) -> str:
    """`label  running 12s  <the unit's latest progress bar or log line>`."""
    return f"  ...    {label} running {seconds:.0f}s  {last_line(path)}"


def last_line(path: Path, tail: int = 4096) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, fh.seek(0, os.SEEK_END) - tail))
            text = fh.read().decode(errors="replace")
    except OSError:
        return ""
    parts = [p.strip() for p in text.replace("\r", "\n").split("\n") if p.strip()]
    return parts[-1][:120] if parts else ""
