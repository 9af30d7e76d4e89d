"""Merge: put the model's face onto the dst frames.

Pure functions: mask.py (hulls, erode/blur, face-mesh and hand masks, skin model), color.py (rct, lct, mkl, idt,
sot, histogram matching, colour degradation), blend.py (face-space <-> frame geometry, alpha and Poisson
blending), temporal.py (flicker metric, smoothing over neighbouring frames), superres.py (the face-detail
network learned from src faces). The stage: merger.py (`merge`, `merge_frame`, `preview`).
"""
