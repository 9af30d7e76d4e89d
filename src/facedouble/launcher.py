"""`--device all`: training on every GPU of this machine through PyTorch's own launcher, torchrun.

`facedouble train --device all ...` started by hand on a machine with N > 1 GPUs runs itself again as
`python -m torch.distributed.run --standalone --nproc-per-node N -m facedouble train --device all ...`: one
process per GPU, gradients averaged by DistributedDataParallel, rank 0 alone writing files (see
train/trainer.py). Under torchrun already (RANK / WORLD_SIZE set), or with one GPU or none, nothing is
launched. Several machines are started by the user with torchrun's --nnodes and rendezvous options (README).
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Mapping, Sequence

TORCHRUN = ("-m", "torch.distributed.run")


def under_torchrun(env: Mapping[str, str] = os.environ) -> bool:
    """True in a process that torchrun started (it sets RANK, WORLD_SIZE and the rendezvous variables)."""
    return "RANK" in env or "WORLD_SIZE" in env or "TORCHELASTIC_RUN_ID" in env


def should_launch(device: str | None, gpus: int, env: Mapping[str, str] = os.environ) -> bool:
    """Whether a `train` with this --device should re-run itself under torchrun: `all`, several GPUs, and not
    already started by torchrun."""
    return (device or "").strip().lower() == "all" and gpus > 1 and not under_torchrun(env)


def torchrun_command(args: Sequence[str], gpus: int, python: str = sys.executable) -> list[str]:
    """The command that runs `facedouble ARGS` once per GPU of this machine (`args` begins with the command
    name, e.g. ["train", "-w", "ws", "--device", "all"]). --standalone: a local rendezvous on a free port, so
    two such runs on one machine do not collide."""
    return [python, *TORCHRUN, "--standalone", f"--nproc-per-node={gpus}", "-m", "facedouble", *args]


def launch(args: Sequence[str], gpus: int) -> int:
    """Run `facedouble ARGS` under torchrun and return its exit code. On POSIX this process becomes torchrun
    (exec), so Ctrl-C and SIGTERM reach it directly and it stops its workers, which save as usual."""
    cmd = torchrun_command(args, gpus)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    sys.stderr.write(f"training on {gpus} GPUs: {' '.join(cmd[1:])}\n")
    sys.stderr.flush()
    if os.name == "posix":
        from .native_logs import restore

        restore()  # torchrun gets the real stderr (the filter's thread does not survive exec)
        os.execve(cmd[0], cmd, env)  # does not return
    return subprocess.call(cmd, env=env)
