"""The metadata tag written into the container of every result video (DESIGN.md section 6).

Which keys survive FFmpeg's muxers (measured with PyAV 18 by writing and reading back):

| key                 | mp4 | mp4 + use_metadata_tags | mov | avi | mkv |
|---------------------|-----|-------------------------|-----|-----|-----|
| comment             | yes | yes                     | yes | yes | yes (read back as COMMENT) |
| description         | yes | yes                     | no  | no  | yes |
| custom (ai_generated, facedouble_run_id, ...) | no | yes | only with use_metadata_tags | no | yes |

So the statement goes into `comment` (kept by every container facedouble writes) and `description`, and the
machine-readable keys are added for the containers that keep them (the video build writes MP4 and MOV with
`movflags=+use_metadata_tags`). `read_tag` looks at all of them, case-insensitively.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import InputError

IPTC_COMPOSITE = "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"

_SENTENCE = "AI-generated: a face in this video was replaced using facedouble {version} (run {run_id})."
_PATTERN = re.compile(r"AI-generated: a face in this video was replaced using facedouble (?P<version>\S+) "
                      r"\(run (?P<run_id>[^)\s]+)\)")


def container_metadata(run_id: str, version: str = __version__) -> dict[str, str]:
    """Container tags stating that a face was replaced with facedouble (AI-generated), naming the run."""
    run_id = str(run_id)
    text = _SENTENCE.format(version=version, run_id=run_id)
    return {
        "comment": text,
        "description": text,
        "ai_generated": "true",
        "digital_source_type": IPTC_COMPOSITE,
        "facedouble_version": version,
        "facedouble_run_id": run_id,
    }


def parse_tag(metadata: dict[str, Any]) -> dict[str, Any] | None:
    """The facedouble tag in a container's metadata (any key case), or None when there is none."""
    md = {str(k).lower(): str(v) for k, v in metadata.items()}
    found: dict[str, Any] = {}
    for key in ("comment", "description"):
        m = _PATTERN.search(md.get(key, ""))
        if m:
            found.setdefault("version", m.group("version"))
            found.setdefault("run_id", m.group("run_id"))
            found.setdefault("text", md[key])
            found.setdefault("keys", []).append(key)
    for key, field in (("facedouble_run_id", "run_id"), ("facedouble_version", "version")):
        if key in md:
            found[field] = md[key]
            found.setdefault("keys", []).append(key)
    if not found:
        return None
    if "ai_generated" in md:
        found.setdefault("keys", []).append("ai_generated")
    if "digital_source_type" in md:
        found["digital_source_type"] = md["digital_source_type"]
        found.setdefault("keys", []).append("digital_source_type")
    found["ai_generated"] = md.get("ai_generated", "true" if "text" in found else "") == "true"
    found["generator"] = "facedouble"
    return found


def read_tag(path: str | Path) -> dict[str, Any] | None:
    """The facedouble tag of a video file, or None when it has none. Raises InputError when the file cannot
    be opened as a container."""
    import av

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} does not exist; give the path of a video file.")
    try:
        with av.open(str(path)) as container:
            metadata = dict(container.metadata)
            for stream in container.streams:
                for k, v in stream.metadata.items():
                    metadata.setdefault(k, v)
    except (av.error.FFmpegError, OSError, ValueError) as e:
        raise InputError(f"{path} cannot be read as a video ({e}); check that it is a complete video file.") from None
    return parse_tag(metadata)
