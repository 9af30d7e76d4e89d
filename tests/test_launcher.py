"""`--device all`: the torchrun command that `facedouble train` runs for the user on a machine with several GPUs."""

from __future__ import annotations

import sys

import pytest
from typer.testing import CliRunner

from facedouble import launcher


def test_torchrun_command_runs_the_same_facedouble_command_once_per_gpu():
    cmd = launcher.torchrun_command(["train", "-w", "ws", "--device", "all", "-b", "16"], 4, python="/py")
    assert cmd == ["/py", "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=4", "-m", "facedouble",
                   "train", "-w", "ws", "--device", "all", "-b", "16"]
    # torchrun's own parser reads it as: 4 local processes, a local rendezvous, module facedouble with those args
    from torch.distributed.run import get_args_parser

    args = get_args_parser().parse_args(cmd[3:])
    assert args.nproc_per_node == "4" and args.standalone and args.module
    assert args.training_script == "facedouble"
    assert args.training_script_args == ["train", "-w", "ws", "--device", "all", "-b", "16"]


@pytest.mark.parametrize("device, gpus, env, expected", [
    ("all", 4, {}, True),
    ("ALL", 2, {}, True),
    ("all", 1, {}, False),           # one GPU: nothing to spread over
    ("all", 0, {}, False),
    ("auto", 4, {}, False),          # only --device all launches
    ("cuda:1", 4, {}, False),
    ("all", 4, {"RANK": "0", "WORLD_SIZE": "4"}, False),   # already a torchrun worker
    ("all", 4, {"TORCHELASTIC_RUN_ID": "x"}, False),
])
def test_should_launch(device, gpus, env, expected):
    assert launcher.should_launch(device, gpus, env) is expected


def test_cli_train_device_all_execs_torchrun(workspace, monkeypatch):
    """`facedouble train --device all` on a (pretend) 3-GPU machine becomes torchrun with the same arguments;
    with one GPU it trains in this process (here: stops at the missing faces, without launching)."""
    from facedouble.cli import app

    argv = ["train", "-w", str(workspace.root), "--device", "all", "--batch-size", "8"]
    launched = []

    def fake_execve(path, cmd, env):
        launched.append((path, cmd, env))
        raise SystemExit(0)

    monkeypatch.setattr(sys, "argv", ["facedouble", *argv])
    monkeypatch.setattr("facedouble.device.gpu_count", lambda: 3)
    monkeypatch.setattr(launcher.os, "execve", fake_execve)
    for name in ("RANK", "WORLD_SIZE", "TORCHELASTIC_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    r = CliRunner().invoke(app, argv)
    assert r.exit_code == 0, r.output
    [(path, cmd, env)] = launched
    assert path == sys.executable
    assert cmd == launcher.torchrun_command(argv, 3) and "--nproc-per-node=3" in cmd
    assert env["OMP_NUM_THREADS"]
    assert "training on 3 GPUs" in r.output

    launched.clear()
    monkeypatch.setattr("facedouble.device.gpu_count", lambda: 1)
    r = CliRunner().invoke(app, argv)
    assert not launched and r.exit_code != 0 and "Traceback" not in r.output  # no faces: one clear sentence
