"""facedouble: replace a face in a video with another person's face, for consented work.

Every output is marked as AI-generated. `import facedouble` gives the Python API (see api.py).
"""

from .native_logs import set_environment as _set_log_environment

_set_log_environment()  # native log levels, before mediapipe is ever imported (the rest: native_logs.silence)

__version__ = "0.1.0"
