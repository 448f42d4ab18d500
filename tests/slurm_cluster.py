"""A single-node SLURM cluster on this machine, for the workflow test: munged, slurmctld and
slurmd in a temporary folder, configured for localhost, started as child processes and stopped
by their PIDs. No database: accounting storage is off and job completions go to a text file
(jobcomp/filetxt), which `sacct --completion` reads.

    with SlurmCluster(tmp) as cluster:  # cluster.env has SLURM_CONF for sbatch/squeue/sacct
        ...
"""

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "srun", "squeue", "sacct", "scontrol", "sinfo", "scancel")
PACKAGES = ("slurm-wlm", "munge")


def missing_tools() -> list[str]:
    paths = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    return [t for t in (*DAEMONS, *CLIENTS) if shutil.which(t, path=paths) is None]


def install() -> str:
    """Install Debian's slurm-wlm and munge when missing (root and apt-get only); '' or why not."""
    if not missing_tools():
        return ""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return f"SLURM tools missing ({', '.join(missing_tools())}); needs root and apt-get to install"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES]
    ok = subprocess.run(cmd, env=env, capture_output=True).returncode == 0
    if not ok:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
        ok = subprocess.run(cmd, env=env, capture_output=True).returncode == 0
    return "" if ok and not missing_tools() else f"apt-get install {' '.join(PACKAGES)} failed"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _exe(name: str) -> str:
    return shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]))


class SlurmCluster:
    """One node (this host) with one partition; `cpus`/`mem_mb` are what the node declares
    (config_overrides lets a small test machine declare what the study's jobs ask for)."""

    def __init__(self, root: Path, cpus: int = 16, mem_mb: int = 64000, partition: str = "medtrans"):
        self.root, self.cpus, self.mem_mb, self.partition = Path(root), cpus, mem_mb, partition
        self.node = socket.gethostname().split(".")[0]
        self.procs: dict[str, subprocess.Popen] = {}
        self.conf = self.root / "slurm.conf"
        self.jobcomp = self.root / "jobcomp.txt"
        # SLURM_CONF points the clients here; the executor's job step drops SLURM_* variables
        # before its inner `srun`, so wrappers first on PATH carry the file's path too.
        self.bin = self.root / "bin"
        path = os.pathsep.join([str(self.bin), os.environ.get("PATH", "")])
        self.env = {**os.environ, "SLURM_CONF": str(self.conf), "PATH": path}

    def __enter__(self) -> "SlurmCluster":
        try:
            self._write_config()
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _write_wrappers(self) -> None:
        self.bin.mkdir(parents=True, exist_ok=True)
        for client in CLIENTS:
            wrapper = self.bin / client
            wrapper.write_text(f'#!/bin/sh\nSLURM_CONF={self.conf} exec {_exe(client)} "$@"\n')
            wrapper.chmod(0o755)

    def _write_config(self) -> None:
        r = self.root
        self._write_wrappers()
        for d in ("state", "spool", "log"):
            (r / d).mkdir(parents=True, exist_ok=True)
        key = r / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        (r / "plugstack.conf").write_text("")
        self.conf.write_text(
            "\n".join(
                [
                    "ClusterName=medtrans-test",
                    f"SlurmctldHost={self.node}(127.0.0.1)",
                    f"SlurmctldPort={_free_port()}",
                    f"SlurmdPort={_free_port()}",
                    "SlurmUser=root",
                    "AuthType=auth/munge",
                    "CredType=cred/munge",
                    f"AuthInfo=socket={r / 'munge.socket'}",
                    f"StateSaveLocation={r / 'state'}",
                    f"SlurmdSpoolDir={r / 'spool'}",
                    f"SlurmctldPidFile={r / 'slurmctld.pid'}",
                    f"SlurmdPidFile={r / 'slurmd.pid'}",
                    f"SlurmctldLogFile={r / 'log/slurmctld.log'}",
                    f"SlurmdLogFile={r / 'log/slurmd.log'}",
                    f"PlugStackConfig={r / 'plugstack.conf'}",
                    "ProctrackType=proctrack/linuxproc",
                    "TaskPlugin=task/none",
                    "JobAcctGatherType=jobacct_gather/none",
                    "AccountingStorageType=accounting_storage/none",
                    "JobCompType=jobcomp/filetxt",
                    f"JobCompLoc={self.jobcomp}",
                    "MinJobAge=3600",  # squeue keeps finished jobs: the executor's status checks
                    "SchedulerType=sched/backfill",
                    "SelectType=select/cons_tres",
                    "SelectTypeParameters=CR_CPU",
                    "SlurmdParameters=config_overrides",
                    "ReturnToService=2",
                    "MpiDefault=none",
                    "SchedulerParameters=sched_interval=1",
                    f"NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.cpus}"
                    f" RealMemory={self.mem_mb} State=UNKNOWN",
                    f"PartitionName={self.partition} Nodes={self.node} Default=YES MaxTime=INFINITE State=UP",
                    "",
                ]
            )
        )

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.root / "log" / f"{name}.out", "w")  # noqa: SIM115 (closed with the process)
        self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=self.env)

    def _start(self) -> None:
        r = self.root
        self._spawn(
            "munged",
            [
                _exe("munged"),
                "--foreground",
                "--force",
                f"--socket={r / 'munge.socket'}",
                f"--key-file={r / 'munge.key'}",
                f"--pid-file={r / 'munged.pid'}",
                f"--log-file={r / 'log/munged.log'}",
                f"--seed-file={r / 'munge.seed'}",
            ],
        )
        self._wait(lambda: (r / "munge.socket").exists(), "munged socket")
        self._spawn("slurmctld", [_exe("slurmctld"), "-D", "-f", str(self.conf)])
        self._wait(lambda: self._ok(["scontrol", "ping"], "UP"), "slurmctld")
        self._spawn("slurmd", [_exe("slurmd"), "-D", "-f", str(self.conf), "-N", self.node])
        self._wait(lambda: self._ok(["sinfo", "-h", "-o", "%t"], "idle"), "slurmd (node idle)")

    def _ok(self, argv: list[str], want: str) -> bool:
        done = subprocess.run([_exe(argv[0]), *argv[1:]], env=self.env, capture_output=True, text=True)
        return done.returncode == 0 and want in done.stdout

    def _wait(self, check, what: str, timeout: float = 60) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            dead = [n for n, p in self.procs.items() if p.poll() is not None]
            if dead:
                raise RuntimeError(f"{dead[0]} exited while waiting for {what}: {self.logs(dead[0])}")
            if check():
                return
            time.sleep(0.5)
        raise RuntimeError(f"timed out waiting for {what}: {self.logs()}")

    def logs(self, name: str | None = None) -> str:
        files = sorted((self.root / "log").glob(f"{name or ''}*"))
        return " | ".join(f"{f.name}: {f.read_text(errors='replace')[-800:]}" for f in files)

    def stop(self) -> None:
        """Cancel this cluster's jobs, then stop the daemons by their PIDs, newest first; kill
        what does not stop in 20 s."""
        if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
            cancel = [_exe("scancel"), "--full", "--user", str(os.getuid())]
            subprocess.run(cancel, env=self.env, capture_output=True)
            end = time.monotonic() + 20
            while time.monotonic() < end and self._busy():
                time.sleep(0.5)
        for name in reversed(list(self.procs)):
            proc = self.procs.pop(name)
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)

    def _busy(self) -> bool:
        done = subprocess.run(
            [_exe("squeue"), "-h", "-o", "%T"], env=self.env, capture_output=True, text=True
        )
        return done.returncode == 0 and any(s in done.stdout for s in ("RUNNING", "PENDING", "COMPLETING"))

    def completed_jobs(self) -> list[dict[str, str]]:
        """Finished jobs from the job-completion file, through `sacct --completion`."""
        fields = "jobid,jobname,state,exitcode,ncpus,partition"
        done = subprocess.run(
            [_exe("sacct"), "--completion", "-n", "-P", "-o", fields],
            env=self.env,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise RuntimeError(f"sacct --completion failed: {done.stderr.strip()}")
        names = fields.split(",")
        return [dict(zip(names, line.split("|"), strict=False)) for line in done.stdout.splitlines() if line]
