"""Video I/O with PyAV (no ffmpeg binary): probe, frames out, cut, denoise, frames + audio in.

Stage functions: `extract_frames`, `cut_video`, `denoise_frames`, `build_video`.
"""

from .build import build_video
from .cut import cut_video
from .denoise import denoise_frames
from .frames import extract_frames
from .probe import probe, timeline

__all__ = ["build_video", "cut_video", "denoise_frames", "extract_frames", "probe", "timeline"]
