"""facedouble: replace a face in a video with another person's face, for consented work.

Every output is marked as AI-generated. `import facedouble` gives the Python API (see api.py).
"""

import os as _os

# mediapipe's native logging floods the terminal otherwise
_os.environ.setdefault("GLOG_minloglevel", "2")
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
