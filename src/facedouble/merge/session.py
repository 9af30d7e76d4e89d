"""A merge session: one frame merged again and again while options change, as the original's interactive merger
does. The browser UI's merge tuner and `facedouble merge --frame N --preview` both use it.

It keeps the loaded model (reloaded when the model options change), a `MergeState` caching the model's output for
the same face, the dst records (read again when aligned/ changes), the last frames read, and one provenance run
id for everything it writes: every image that leaves it is marked as AI-generated and signed.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

from ..config import MergeConfig
from ..imagefile import RGBCache, encode_jpeg
from ..progress import Reporter
from ..workspace import Workspace
from . import merger
from . import compose
from . import marking


class MergeSession:
    """Merge single frames of a workspace with changing options.

    `swapper_factory(ws, cfg)` loads the model (default: the workspace's, `merger.load_swapper`). With
    `train_detail` a missing face-detail network (--super-resolution) is learned on first use (the CLI); without
    (the UI, which must answer quickly), its absence is a ModelError telling the user to merge once with it on,
    and with "auto" the preview goes without it and says so once."""

    def __init__(self, ws: Workspace, swapper_factory: Optional[Callable[[Workspace, MergeConfig], Any]] = None, *,
                 train_detail: bool = False, reporter: Optional[Reporter] = None) -> None:
        self.ws = ws
        self.factory = swapper_factory or merger.load_swapper
        self.train_detail, self.reporter = train_detail, reporter or Reporter()
        self.lock = threading.Lock()
        self.swapper: Any = None
        self.model_key: Optional[tuple] = None
        self.state: Optional[compose.MergeState] = None
        self._records: Optional[dict] = None
        self._records_key: Any = None
        self.run_id = marking.new_run_id()
        self.frames = RGBCache(8)
        self._detail_key: Any = None
        self._detail_value: Any = None

    def records(self) -> dict:
        """The dst face records by frame name (read again when data_dst/aligned changes)."""
        folder = self.ws.aligned("dst")
        key = folder.stat().st_mtime_ns if folder.is_dir() else None
        if self._records is None or key != self._records_key:
            self._records, self._records_key = merger.frame_records(self.ws), key
        return self._records

    def _model(self, cfg: MergeConfig) -> Any:
        key = (cfg.model, cfg.model_name, cfg.model_file, cfg.device)
        if self.swapper is None or key != self.model_key:
            self.swapper, self.model_key = self.factory(self.ws, cfg), key
            self.state = compose.MergeState()
        return self.swapper

    def _detail(self, cfg: MergeConfig) -> Any:
        """The face-detail network this frame's options ask for (`merger.face_detail_for`), asked again only when
        the mode, the model or the saved network changes, so its notices are said once, not on every preview."""
        path = merger.face_detail_file(self.ws, cfg, self.swapper.resolution)
        key = (cfg.super_resolution, self.model_key, path.stat().st_mtime_ns if path.exists() else None)
        if key != self._detail_key:
            self._detail_value = merger.face_detail_for(self.ws, cfg, self.swapper.resolution, self.reporter,
                                                        swapper=self.swapper, learn=self.train_detail)
            self._detail_key = key
        return self._detail_value

    def merge(self, number: int, cfg: MergeConfig) -> compose.MergedFrame:
        """Frame `number` (1 = first) merged with `cfg` (its per-frame ranges applied). Not yet marked."""
        with self.lock:
            swapper = self._model(cfg)
            frame_cfg = cfg.for_frame(number)
            detail = self._detail(frame_cfg)
            path = merger.find_frame(self.ws, number)
            by_frame = self.records()
            records = by_frame.get(path.name, [])
            if not records:
                self.reporter.warn(f"Frame {path.name} has no aligned face; the preview is the frame itself.")
            neighbours = merger.neighbour_records(self.ws, by_frame, path)
            return compose.merge_frame(self.frames.get(path), records, swapper, frame_cfg, self.state,
                                      detail=detail, warn=self.reporter.warn, neighbours=neighbours)

    def preview_jpeg(self, number: int, cfg: MergeConfig, quality: int = 92) -> tuple[bytes, float]:
        """The merged frame as a marked, C2PA-signed JPEG, and the milliseconds it took (the UI's preview)."""
        t0 = time.perf_counter()
        signer = marking.output_signer(self.run_id, cfg)
        image = marking.mark_output(self.merge(number, cfg).image, self.run_id, matte=marking.is_matte(cfg))
        signed = marking.sign_output(encode_jpeg(image, quality), f"preview_{number:06d}.jpg", self.run_id, signer)
        return signed, (time.perf_counter() - t0) * 1000

    def preview_file(self, number: int, cfg: MergeConfig, out_path: str | Path) -> compose.MergedFrame:
        """Write the merged frame to `out_path` (PNG or JPEG by its suffix), marked and signed (the CLI's preview)."""
        signer = marking.output_signer(self.run_id, cfg)  # a bad --sign-cert/--sign-key stops here, before any work
        merged = self.merge(number, cfg)
        out_path = Path(out_path)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        marking.write_marked(out_path, merged.image, self.run_id, signer=signer, matte=marking.is_matte(cfg))
        return merged
