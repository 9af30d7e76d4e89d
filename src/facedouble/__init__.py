"""facedouble: replace a face in a video with another person's face, for consented work.

Every output is marked as AI-generated. `import facedouble` gives the Python API (see api.py).
"""

__version__ = "0.1.0"
