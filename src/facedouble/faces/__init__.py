"""Faces: detection, landmarks, alignment geometry, pose, identity, and metadata inside face images."""
