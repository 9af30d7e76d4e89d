"""Safety of the local web app: a secret token, Host and Origin checks, and path confinement.

The app binds 127.0.0.1 unless told otherwise. Every request must carry the token (cookie set on the first
visit through the URL printed by `facedouble ui`, an `X-Token` header, or `?token=`); a request without one
gets 401, a wrong one 403. The Host header must name this machine (or the host given with --host), which
defeats DNS rebinding; a state-changing request whose Origin is not the app's own is refused (403), and the
cookie is SameSite=Strict, which defeats cross-site request forgery. Files are served only from inside the
workspace: every path is resolved (symlinks followed) and must stay below the workspace root.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Iterable
from urllib.parse import urlsplit

from fastapi import HTTPException

COOKIE = "facedouble_token"
HEADER = "x-token"
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_UPLOAD_BYTES = 20 * 1024 * 1024


def new_token() -> str:
    return secrets.token_urlsafe(24)


def host_name(host_header: str) -> str:
    """The host name of a Host header (`name`, `name:port`, `[v6]` or `[v6]:port`), without the port and
    brackets, lower case; "" when the header has any other form (such as `localhost:1@evil.example`)."""
    host = host_header.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        if end < 0:
            return ""
        name, rest = host[1:end], host[end + 1:]
    else:
        name, sep, port = host.partition(":")
        rest = sep + port
    if rest and not (rest.startswith(":") and rest[1:].isdigit()):
        return ""
    return name


class Guard:
    """The checks every request goes through (see the module doc)."""

    def __init__(self, token: str, hosts: Iterable[str] = ()) -> None:
        self.token = token
        self.hosts = set(LOCAL_HOSTS) | {h.lower() for h in hosts if h}

    def token_status(self, given: str | None) -> int:
        """200 when `given` is the token, 401 when missing, 403 when wrong."""
        if not given:
            return 401
        return 200 if secrets.compare_digest(given.encode(), self.token.encode()) else 403

    def host_ok(self, host_header: str | None) -> bool:
        return bool(host_header) and host_name(host_header) in self.hosts

    def origin_ok(self, method: str, host_header: str, origin: str | None, fetch_site: str | None) -> bool:
        """Safe methods always pass; others need no Origin or the app's own, and no cross-site fetch."""
        if method.upper() in SAFE_METHODS:
            return True
        if origin is not None:
            if origin == "null":
                return False
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or parts.netloc.lower() != host_header.strip().lower():
                return False
        return fetch_site not in ("cross-site", "same-site")


def confine(root: Path, *parts: str) -> Path:
    """`root / parts...` resolved; 403 if it leaves `root` (.., absolute parts, symlinks out)."""
    root = Path(root).resolve()
    try:
        path = root.joinpath(*parts).resolve()
    except (OSError, ValueError):
        raise HTTPException(403, "That path is outside the workspace.") from None
    if not path.is_relative_to(root):
        raise HTTPException(403, "That path is outside the workspace.")
    return path


def safe_name(name: str) -> str:
    """A single file name (no folders, no leading dot); 403 otherwise."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\x00" in name or name.startswith("."):
        raise HTTPException(403, f"{name!r} is not a plain file name inside the workspace.")
    return name
