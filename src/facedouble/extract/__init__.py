"""The face extraction stage: frames of data_<side>/ -> aligned faces in data_<side>/aligned/.

For each frame: detect faces (retried on the frame turned 90/180/270 degrees when none is found), fit 68
landmarks, align (faces/align.py), and write `<frame>_<i>.jpg` with its FaceRecord inside (meta.write_face):
frame-to-face matrix, landmarks in both spaces, detector box, frame size, detector and landmarker names,
a 128-d identity embedding and the head pose (extra: yaw, pitch, roll).

A detection counts only when the face cut out upright from its landmarks passes a verifier (faces/mtcnn.py
FaceVerifier), which removes the faces detectors see in titles, clouds and turned frames.

- src frames are independent: worker processes (one detector + landmarker each) do everything.
- dst is a sequence: workers detect and fit landmarks; this process then, in frame order, keeps one face
  per frame for the target person (TargetTracker), smooths its landmarks over time (One-Euro filter, reset
  on cuts and when the track is lost), and writes it. A face the verifier turned down is kept only when it
  continues the target's track (a face leaving the frame).
- Fewer than SMALL_JOB frames run in this process (starting workers costs a few seconds), unless
  `--workers N` (N > 1) is given. With `spawn` workers, a script calling `extract` must guard its entry point
  with `if __name__ == "__main__":` (as every multiprocessing program on macOS and Windows must).

Resumable: frames that already have faces, and frames listed in data_<side>/extract_state.json (done, with
or without a face), are skipped; the options are saved to data_<side>/extract.json. Explicit content is
screened for before any face is extracted (safety.py).
"""


from .layout import (MANUAL_FIX_NAME, STATE_NAME, debug_path, face_name, faces_by_frame,
                     frames_without_faces, read_rects, write_manual_fix)
from .manual import extract_with_rect, manual_fix_deleted, redraw_debug
from .stage import ExtractSummary, extract

__all__ = ["MANUAL_FIX_NAME", "STATE_NAME", "ExtractSummary", "debug_path", "extract",
           "extract_with_rect", "face_name", "faces_by_frame", "frames_without_faces", "manual_fix_deleted",
           "read_rects", "redraw_debug", "write_manual_fix"]
