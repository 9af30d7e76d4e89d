"""Sort: order aligned faces for curation, move rejects to the trash, undo; face-set utilities.

metrics.py (per-face numbers, pure), ranking.py (orderings of a whole set, pure), cache.py (the metric
index), journal.py (undoable, resumable moves), sorting.py (the stage), faceset.py (the util commands).
"""

from .sorting import SortResult, UndoResult, sort_faces, sort_folder, undo_folder, undo_sort

__all__ = ["SortResult", "UndoResult", "sort_faces", "sort_folder", "undo_folder", "undo_sort"]
