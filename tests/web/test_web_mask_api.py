"""The Mask editor's API (issue 19, item 1) on a small real workspace (faces of single_face.mp4 extracted by the
real extraction stage): faces of a side with their labelled flag, labels read and written through the face
file's record (pixels untouched), refusals of bad polygons that leave the file as it was, the mesh and XSeg
overlays, and the polygons of a face imported from the original tool."""

from __future__ import annotations

import hashlib
import pickle
import struct

import cv2
import numpy as np

from facedouble.faces import dfl, container
from facedouble.xseg.labels import export_labels
from support.client import make_client

INCLUDE = [[[10.0, 12.0], [110.0, 14.5], [100.0, 118.0], [20.0, 115.25]]]
EXCLUDE = [[[40.0, 70.0], [80.0, 70.0], [60.0, 100.0]]]


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _png(resp) -> np.ndarray:
    assert resp.status_code == 200 and resp.headers["content-type"] == "image/png", resp.text[:200]
    img = cv2.imdecode(np.frombuffer(resp.content, np.uint8), cv2.IMREAD_UNCHANGED)
    assert img is not None and img.ndim == 2
    return img


def test_labels_round_trip_through_the_face_file(web_ws):
    c = make_client(web_ws)
    r = c.get("/api/xseg/src/faces").json()
    names = [f["name"] for f in r["faces"]]
    assert r["count"] == 4 and names == sorted(p.name for p in web_ws.aligned("src").glob("*.jpg"))
    assert r["labelled"] == 0 and not any(f["labelled"] or f["xseg"] for f in r["faces"])
    name = names[1]
    path = web_ws.aligned("src") / name
    pixels = container.read_face(path)[0]
    size = container.read_record(path).size
    got = c.get(f"/api/xseg/src/labels/{name}").json()
    assert got == {"side": "src", "name": name, "size": size, "include": [], "exclude": [], "labelled": False,
                   "xseg": False}

    put = c.put(f"/api/xseg/src/labels/{name}", json={"include": INCLUDE, "exclude": EXCLUDE})
    assert put.status_code == 200, put.text
    assert put.json()["include"] == INCLUDE and put.json()["exclude"] == EXCLUDE and put.json()["labelled"]
    rec = container.read_record(path)                                   # in the file's own record
    assert rec.mask_polys == INCLUDE and rec.exclude_polys == EXCLUDE
    image, _ = container.read_face(path)
    assert np.array_equal(image, pixels)                           # the JPEG's pixels were not re-encoded
    assert not list(path.parent.glob(".*.tmp")) and not list(path.parent.glob("*.tmp"))
    again = c.get(f"/api/xseg/src/labels/{name}").json()
    assert again["include"] == INCLUDE and again["exclude"] == EXCLUDE and again["labelled"]
    flags = {f["name"]: f["labelled"] for f in c.get("/api/xseg/src/faces").json()["faces"]}
    assert flags == {n: n == name for n in names}
    assert export_labels(web_ws, "src") == {name: {"include": INCLUDE, "exclude": EXCLUDE}}   # the CLI sees them

    cleared = c.put(f"/api/xseg/src/labels/{name}", json={"include": [], "exclude": []}).json()
    assert cleared["labelled"] is False and container.read_record(path).mask_polys == []
    assert c.get("/api/xseg/src/faces").json()["labelled"] == 0


def test_bad_polygons_are_refused_and_the_file_is_untouched(web_ws):
    c = make_client(web_ws)
    name = sorted(p.name for p in web_ws.aligned("dst").glob("*.jpg"))[0]
    path = web_ws.aligned("dst") / name
    size = container.read_record(path).size
    c.put(f"/api/xseg/dst/labels/{name}", json={"include": INCLUDE, "exclude": []})
    before = _sha(path)
    cases = [
        ({"include": [[[10, 10], [size + 5, 12], [60, 90]]], "exclude": []},
         f"outside the {size} x {size} px face"),
        ({"include": [[[10, 10], [-1, 12], [60, 90]]], "exclude": []}, "outside"),
        ({"include": [], "exclude": [[[10, 10], [50, 12]]]}, "at least 3"),
        ({"include": "everything", "exclude": []}, "not a list of polygons"),
        ({"include": [[[10, "a"], [50, 12], [60, 90]]], "exclude": []}, "two finite numbers"),
        ({"include": [[[10, 10], [50, 12], [60, 90]]]}, "Give the labels as"),
        ({"include": [], "exclude": [], "mesh": True}, "Give the labels as"),
    ]
    for body, words in cases:
        r = c.put(f"/api/xseg/dst/labels/{name}", json=body)
        assert r.status_code == 400, (body, r.status_code, r.text)
        detail = r.json()["detail"]
        assert words in detail and (name in detail or words == "Give the labels as"), detail
    assert c.put(f"/api/xseg/dst/labels/{name}", content=b"not json").status_code == 400
    assert c.put("/api/xseg/dst/labels/nope.jpg", json={"include": [], "exclude": []}).status_code == 404
    assert c.put("/api/xseg/dst/labels/..%2Fextract.json", json={"include": [], "exclude": []}).status_code in (403, 404)
    assert c.put(f"/api/xseg/both/labels/{name}", json={"include": [], "exclude": []}).status_code == 404
    assert _sha(path) == before                                    # every refusal left the face as it was
    assert container.read_record(path).mask_polys == INCLUDE

    from facedouble.sort import journal

    with journal.FolderLock(path.parent):                          # a sort holds the folder: no write under it
        r = c.put(f"/api/xseg/dst/labels/{name}", json={"include": [], "exclude": []})
    assert r.status_code == 409 and "wait for it" in r.json()["detail"]
    assert _sha(path) == before


def test_mesh_and_xseg_overlays(web_ws):
    c = make_client(web_ws)
    name = sorted(p.name for p in web_ws.aligned("src").glob("*.jpg"))[0]
    path = web_ws.aligned("src") / name
    size = container.read_record(path).size
    mesh = _png(c.get(f"/api/xseg/src/overlay/{name}?kind=mesh"))
    assert mesh.shape == (size, size)
    assert mesh[size // 2, size // 2] == 255                       # the face's centre is inside the oval
    assert mesh[0, 0] == 0 and mesh[-1, -1] == 0 and mesh[0, -1] == 0       # the corners are not
    assert 0.2 < (mesh > 127).mean() < 0.9

    r = c.get(f"/api/xseg/src/overlay/{name}?kind=xseg")
    assert r.status_code == 404 and "xseg apply src" in r.json()["detail"]
    assert c.get(f"/api/xseg/src/overlay/{name}?kind=hull").status_code == 404
    # an applied mask (as `xseg apply` stores it: at most 256 px) comes back at the face's size
    half = np.zeros((64, 64), np.float32)
    half[:, :32] = 1.0
    rec = container.read_record(path)
    rec.xseg_mask = container.xseg_mask_field(half, "test-model")
    container.update_record(path, rec)
    xseg = _png(c.get(f"/api/xseg/src/overlay/{name}?kind=xseg"))
    assert xseg.shape == (size, size)
    assert xseg[:, : size // 2 - 4].min() == 255 and xseg[:, size // 2 + 4:].max() == 0
    assert c.get(f"/api/xseg/src/labels/{name}").json()["xseg"] is True
    assert {f["name"]: f["xseg"] for f in c.get("/api/xseg/src/faces").json()["faces"]}[name] is True


def test_polygons_of_a_face_from_the_original_tool_are_shown(web_ws, tmp_path):
    """A face made by the original tool (pickled dict in APP15 with seg_ie_polys) keeps its polygons through
    `import-dfl`, and the editor shows them: type 1 include, type 0 exclude."""
    src_face = sorted(web_ws.aligned("src").glob("*.jpg"))[0]
    image, rec = container.read_face(src_face)
    size = image.shape[0]
    include = np.array([[5, 6], [size - 10, 8], [size // 2, size - 4]], np.float32)
    info = {"face_type": "whole_face", "landmarks": rec.landmarks, "source_filename": "00042.png",
            "source_rect": (185, 190, 380, 410), "source_landmarks": rec.source_landmarks,
            "image_to_face_mat": rec.matrix,
            "seg_ie_polys": {"polys": [{"type": 1, "pts": include},
                                       {"type": 0, "pts": [[30.0, 40.0], [60.0, 40.0], [45.0, 70.0]]}]}}
    payload = pickle.dumps(info, protocol=4)
    jpg = container.encode_image(image, ".jpg", 95)
    dfl_dir = tmp_path / "dfl"
    dfl_dir.mkdir()
    (dfl_dir / "00042_0.jpg").write_bytes(jpg[:2] + b"\xff\xef" + struct.pack(">H", len(payload) + 2) + payload + jpg[2:])
    out = tmp_path / "imported"
    dfl.import_dfl(dfl_dir, out, identity=False)
    (out / "00042_0.jpg").rename(web_ws.aligned("dst") / "00042_0.jpg")

    c = make_client(web_ws)
    flags = {f["name"]: f["labelled"] for f in c.get("/api/xseg/dst/faces").json()["faces"]}
    assert flags["00042_0.jpg"] is True
    got = c.get("/api/xseg/dst/labels/00042_0.jpg").json()
    assert np.allclose(got["include"], [include.tolist()]) and np.allclose(got["exclude"], [[[30, 40], [60, 40], [45, 70]]])
