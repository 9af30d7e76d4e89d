"""Live face swap: a camera, stream or file in, a file, stream or virtual camera out (see pipeline.py)."""

from .pipeline import LiveSession, LiveSummary, live

__all__ = ["LiveSession", "LiveSummary", "live"]
