"""Merge: masks, colour transfer and blending (pure functions), and the merge stage (merger.py)."""
