"""Create .venv and install everything facedouble needs, on Linux, macOS and Windows.

    python scripts/bootstrap.py [--dev] [--web]

Some packages must go in with --no-deps (their declared requirements clash, see DESIGN.md section 5),
which one `pip install` cannot express; this script does the steps in order and is idempotent.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
REQ = ROOT / "requirements"


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def pip(*args: str) -> None:
    cmd = [str(venv_python()), "-m", "pip", "--disable-pip-version-check", *args]
    print("+", " ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dev", action="store_true", help="also install test tools")
    parser.add_argument("--web", action="store_true", help="also install the browser UI's packages")
    args = parser.parse_args()

    files = [REQ / "base.txt", REQ / "nodeps.txt"] + ([REQ / "dev.txt"] if args.dev else []) + (
        [REQ / "web.txt"] if args.web else [])
    stamp_text = "".join(f.read_text() for f in files if f.exists()) + (ROOT / "pyproject.toml").read_text()
    digest = hashlib.sha256(stamp_text.encode()).hexdigest()
    stamp = VENV / f".facedouble-installed-{'dev' if args.dev else 'run'}{'-web' if args.web else ''}"
    if stamp.exists() and stamp.read_text() == digest and venv_python().exists():
        print(f"{VENV} is up to date.")
        return
    if not venv_python().exists():
        print(f"creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    reqs = ["-r", str(REQ / "base.txt")]
    if args.dev:
        reqs += ["-r", str(REQ / "dev.txt")]
    if args.web:
        reqs += ["-r", str(REQ / "web.txt")]
    pip("install", *reqs)
    pip("install", "--no-deps", "-r", str(REQ / "nodeps.txt"))
    pip("install", "--no-deps", "--no-build-isolation", "-e", str(ROOT))
    stamp.write_text(digest)
    print("installed. Try: .venv/bin/facedouble doctor")


if __name__ == "__main__":
    main()
