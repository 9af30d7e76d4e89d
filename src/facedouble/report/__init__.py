"""The quality report (DESIGN.md section 4): how much a face-swap result looks like src, keeps dst's expression,
pose and steadiness, leaves the rest of the frame alone and keeps the face's detail.

metrics.py: pure metric functions; scoring.py: measuring faces with the face models (also `identity_score`
for the training previews); sources.py: reading frames; page.py: report.html and report.json; stage.py: the
stage `make_report(ws, cfg, reporter=...)`.
"""

from .scoring import centroid_from_records, identity_score
from .stage import ReportResult, make_report

__all__ = ["make_report", "ReportResult", "identity_score", "centroid_from_records"]
