"""Merge: put the model's face onto the dst frames.

Pure functions: mask.py (mask-mode combination, erode/blur by face size, crop feather, skin model; the face
regions themselves are faces/regions.py's), color.py (the colour-transfer registry: rct, lct, mkl, idt, sot;
histogram matching, colour degradation), blend.py (face-space <-> frame geometry, alpha and Poisson blending),
adjust.py (sharpen, denoise, bicubic degrade, motion blur), temporal.py (flicker metric, smoothing over
neighbouring frames), ranges.py (per-frame settings), superres.py (the face-detail network learned from src
faces). One frame: compose.py (the model's faces, each face's mask, colour and blend, `merge_frame`). Output:
marking.py (THE one place merge output is watermarked and signed). The stage: merger.py (`merge`, `preview`);
session.py (one frame merged again and again: the UI's tuner and `merge --frame --preview`).
"""
