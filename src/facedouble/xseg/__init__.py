"""Trainable face segmentation (XSeg): labels (include/exclude polygons in the face records), the network,
its training, and applying it to a faceset. See DESIGN.md sections 2-3 and issue 19."""

from .apply import apply_xseg, remove_xseg
from .labels import export_labels, fetch_labelled, import_labels
from .network import load_xseg
from .train import train_xseg

__all__ = ["apply_xseg", "remove_xseg", "export_labels", "fetch_labelled", "import_labels",
           "load_xseg", "train_xseg"]
