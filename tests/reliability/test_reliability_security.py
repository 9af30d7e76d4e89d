"""Security (the reliability issue, item 4).

1. Nothing is unpickled on any load path: an `ast` scan of the package refuses pickle-family loads, `torch.load`
   without `weights_only=True`, `np.load(allow_pickle=True)`, unsafe `yaml.load` and `eval`/`exec`; the one
   deliberate exception, the DFL importer's RestrictedUnpickler, is named in an allow-list and shown to refuse
   a pickle that would run code.
2. The metadata readers of faces/container.py and faces/dfl.py (JPEG APP9, PNG iTXt, the JSON record, the DFL APP15 pickle and the
   functions that dispatch between them) are fuzzed with hypothesis: random bytes, real face files with random
   mutations, and valid containers with random payloads. They return a valid record (or None / a dict, as each
   documents) or raise MetadataError (InputError where a function documents it), never anything else, and
   never hang.
3. The web UI refuses path traversal (`../`, encoded, absolute, symlinks out of the workspace) on every route
   that takes a path, a missing or wrong token on every route, and cross-site requests (foreign Origin, foreign
   Host / DNS rebinding).
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import json
import math
import os
import pickle
import signal
import struct
import time
import zlib
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import facedouble
from facedouble.choices import FaceType, values
from facedouble.errors import FaceDoubleError, InputError, MetadataError
from facedouble.faces import align, dfl, container, record

SRC = Path(facedouble.__file__).resolve().parent

FUZZ = settings(max_examples=150, deadline=None, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FUZZ_SLOW = settings(FUZZ, max_examples=3000)


# =============================================================================================================
# 1. No unpickling: an ast scan of the package
# =============================================================================================================

# Modules whose loading functions unpickle (or unmarshal) whatever they are given. Only the attributes below,
# which write or merely name things, may be used; anything else of these modules is a finding.
PICKLE_FAMILY = frozenset({"pickle", "_pickle", "cPickle", "dill", "cloudpickle", "jsonpickle", "joblib", "shelve",
                           "marshal", "copyreg"})
HARMLESS_ATTRS = frozenset({"dump", "dumps", "HIGHEST_PROTOCOL", "DEFAULT_PROTOCOL", "PickleError",
                            "PicklingError", "UnpicklingError", "Pickler", "PickleBuffer"})
ALWAYS_BAD = {
    "eval": "eval() runs text as code",
    "exec": "exec() runs text as code",
    "builtins.eval": "eval() runs text as code",
    "builtins.exec": "exec() runs text as code",
    "pandas.read_pickle": "read_pickle unpickles",
    "yaml.unsafe_load": "yaml.unsafe_load can build any object",
    "yaml.unsafe_load_all": "yaml.unsafe_load_all can build any object",
    "yaml.full_load": "yaml.full_load is not the safe loader",
    "yaml.full_load_all": "yaml.full_load_all is not the safe loader",
}
# Functions that are safe only when called with the right arguments (checked in _unsafe_call).
CHECKED_CALLS = frozenset({"torch.load", "torch.serialization.load", "numpy.load", "yaml.load", "yaml.load_all"})
SAFE_YAML_LOADERS = frozenset({"yaml.SafeLoader", "yaml.CSafeLoader", "yaml.BaseLoader", "yaml.CBaseLoader"})

# (file relative to the package, enclosing class/function, what it uses): deliberate, reviewed exceptions.
# RestrictedUnpickler subclasses pickle.Unpickler and refuses every global outside a small allow-list of numpy
# constructors (test_restricted_unpickler_refuses_code below proves it); nothing else may touch pickle.
ALLOWED = {
    ("faces/dfl.py", "RestrictedUnpickler", "pickle.Unpickler"),
}


@dataclasses.dataclass(frozen=True)
class Finding:
    path: str
    scope: str
    name: str
    line: int
    why: str

    def key(self) -> tuple[str, str, str]:
        return (self.path, self.scope, self.name)

    def __str__(self) -> str:
        return f"{self.path}:{self.line} in {self.scope or '<module>'}: {self.name} ({self.why})"


def _aliases(tree: ast.AST) -> dict[str, str]:
    """Local name -> dotted name of every import in the module (function-local ones too: the package imports
    heavy libraries inside functions)."""
    out: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname:
                    out[a.asname] = a.name
                else:
                    top = a.name.split(".")[0]
                    out[top] = top
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module + "." if node.module else "")
            for a in node.names:
                if a.name != "*":
                    out[a.asname or a.name] = base + a.name
    return out


class _Scanner(ast.NodeVisitor):
    def __init__(self, path: str, tree: ast.AST) -> None:
        self.path, self.aliases = path, _aliases(tree)
        self.scope: list[str] = []
        self.findings: list[Finding] = []

    # -- names -----------------------------------------------------------------------------------------------
    def dotted(self, node: ast.AST) -> str | None:
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            return None
        parts.append(self.aliases.get(node.id, node.id))
        return ".".join(reversed(parts))

    def add(self, node: ast.AST, name: str, why: str) -> None:
        self.findings.append(Finding(self.path, ".".join(self.scope), name, getattr(node, "lineno", 0), why))

    def check_name(self, node: ast.AST, name: str, called_safely: bool = False) -> None:
        head, _, rest = name.partition(".")
        if head in PICKLE_FAMILY:
            if not rest:
                self.add(node, name, f"the {head} module used as a value (getattr, passed around)")
            elif rest.split(".")[0] not in HARMLESS_ATTRS:
                self.add(node, name, f"{head} can run code while loading")
        elif name in ALWAYS_BAD:
            self.add(node, name, ALWAYS_BAD[name])
        elif name in CHECKED_CALLS and not called_safely:
            self.add(node, name, "used without being called directly, so its arguments cannot be checked")

    # -- scopes ----------------------------------------------------------------------------------------------
    def _scoped(self, node) -> None:
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _scoped

    # -- nodes -----------------------------------------------------------------------------------------------
    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level == 0 and node.module and node.module.split(".")[0] in PICKLE_FAMILY:
            for a in node.names:
                if a.name == "*" or a.name not in HARMLESS_ATTRS:
                    self.add(node, f"{node.module}.{a.name}", f"imports a loader of {node.module}")

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self.check_name(node, self.aliases.get(node.id, node.id))

    def visit_Attribute(self, node: ast.Attribute) -> None:
        name = self.dotted(node)
        if name is None:
            self.generic_visit(node)
        elif isinstance(node.ctx, ast.Load):
            self.check_name(node, name)

    def visit_Call(self, node: ast.Call) -> None:
        name = self.dotted(node.func)
        if name in CHECKED_CALLS:
            why = _unsafe_call(name, node, self.dotted)
            if why:
                self.add(node, name, why)
            for child in [*node.args, *node.keywords]:
                self.visit(child)
            return
        self.generic_visit(node)


def _unsafe_call(name: str, call: ast.Call, dotted) -> str | None:
    """Why this call of a CHECKED_CALLS function may unpickle, or None when it cannot."""
    kw = {k.arg: k.value for k in call.keywords}
    if None in kw:
        return "called with **kwargs, so its safety cannot be checked"

    def is_const(node, value) -> bool:
        return isinstance(node, ast.Constant) and node.value is value

    if name in ("torch.load", "torch.serialization.load"):
        if len(call.args) > 2 or "pickle_module" in kw:
            return "torch.load with a pickle_module"
        if not is_const(kw.get("weights_only"), True):
            return "torch.load without weights_only=True unpickles arbitrary objects"
        return None
    if name == "numpy.load":
        flag = call.args[2] if len(call.args) > 2 else kw.get("allow_pickle")
        if flag is not None and not is_const(flag, False):
            return "np.load with allow_pickle (not a literal False) unpickles object arrays"
        return None
    # yaml.load / yaml.load_all
    loader = call.args[1] if len(call.args) > 1 else kw.get("Loader")
    if loader is None or dotted(loader) not in SAFE_YAML_LOADERS:
        return "yaml.load without SafeLoader can build any object"
    return None


def scan_source(text: str, path: str = "<snippet>.py") -> list[Finding]:
    tree = ast.parse(text, filename=path)
    scanner = _Scanner(path, tree)
    scanner.visit(tree)
    return scanner.findings


def scan_package() -> list[Finding]:
    found: list[Finding] = []
    for file in sorted(SRC.rglob("*.py")):
        found += scan_source(file.read_text(encoding="utf-8"), file.relative_to(SRC).as_posix())
    return found


def test_package_never_unpickles():
    files = list(SRC.rglob("*.py"))
    assert len(files) > 30, "the scan should see the whole package"
    found = scan_package()
    bad = [f for f in found if f.key() not in ALLOWED]
    assert not bad, "unsafe loading in the package:\n" + "\n".join(map(str, bad))
    # every allow-list entry is still needed (a stale entry would silently allow a new use)
    used = {f.key() for f in found}
    assert ALLOWED <= used, f"allow-list entries no longer used: {ALLOWED - used}"


@pytest.mark.parametrize("snippet", [
    "import pickle\npickle.load(open('x', 'rb'))",
    "import pickle as p\ndef f(b):\n    return p.loads(b)",
    "from pickle import loads\n",
    "from pickle import loads as L\nL(b'')",
    "import pickle\nclass U(pickle.Unpickler):\n    pass",
    "import pickle\nf = getattr(pickle, 'lo' + 'ads')",
    "import _pickle\n_pickle.loads(b'')",
    "import cPickle\ncPickle.load(f)",
    "import dill\ndill.loads(b'')",
    "import joblib\njoblib.load('m.pkl')",
    "import shelve\nshelve.open('db')",
    "import marshal\nmarshal.loads(b'')",
    "import pandas as pd\npd.read_pickle('x')",
    "import torch\ntorch.load('w.pt')",
    "import torch\ntorch.load('w.pt', weights_only=False)",
    "import torch\ntorch.load('w.pt', map_location='cpu', weights_only=flag)",
    "import torch\ntorch.load('w.pt', 'cpu', pickle, weights_only=True)",
    "import torch\ntorch.load(f, **options)",
    "def g():\n    import torch\n    return torch.load(f)",
    "from torch import load\nload(f)",
    "import torch\nloader = torch.load",
    "import numpy as np\nnp.load('a.npy', allow_pickle=True)",
    "import numpy\nnumpy.load('a.npy', None, True)",
    "from numpy import load\nload('a.npz', allow_pickle=flag)",
    "import yaml\nyaml.load(text)",
    "import yaml\nyaml.load(text, Loader=yaml.Loader)",
    "import yaml\nyaml.unsafe_load(text)",
    "eval(text)",
    "exec(compile(src, 'x', 'exec'))",
    "import builtins\nbuiltins.eval('1')",
])
def test_scanner_catches(snippet):
    assert scan_source(snippet), snippet


@pytest.mark.parametrize("snippet", [
    "# pickle.load(f) in a comment\nx = 1",
    "def f():\n    '''torch.load(f) and np.load(x, allow_pickle=True) in a docstring'''",
    "s = 'eval(x)'",
    "import pickle\ndata = pickle.dumps({'a': 1}, protocol=pickle.HIGHEST_PROTOCOL)",
    "import torch\ntorch.load('w.pt', map_location='cpu', weights_only=True)",
    "import numpy as np\nnp.load('a.npy')\nnp.load('a.npy', allow_pickle=False)",
    "import yaml\nyaml.load(text, Loader=yaml.SafeLoader)\nyaml.safe_load(text)",
    "def f(model):\n    model.eval()\n    return model",
    "import json\njson.load(fh)",
])
def test_scanner_accepts_safe_code(snippet):
    assert scan_source(snippet) == []


def test_scanner_allow_list_is_narrow():
    """The allow-list names one class in one file: the same class elsewhere, or another use in dfl.py, is caught."""
    code = "import pickle\nclass RestrictedUnpickler(pickle.Unpickler):\n    pass\n"
    found = [f.key() for f in scan_source(code, "faces/dfl.py")]
    assert found == [("faces/dfl.py", "RestrictedUnpickler", "pickle.Unpickler")]
    assert all(f.key() not in ALLOWED for f in scan_source(code, "faces/other.py"))
    sneaky = code + "def read(b):\n    return pickle.loads(b)\n"
    assert any(f.key() not in ALLOWED for f in scan_source(sneaky, "faces/dfl.py"))


class _RunsCode:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_restricted_unpickler_refuses_code(tmp_path):
    """The allow-listed unpickler: its own find_class and persistent_load, and a pickle whose reduce would call
    os.system (in every protocol, and written by hand in protocol 0) is refused with MetadataError unrun."""
    assert "find_class" in vars(dfl.RestrictedUnpickler) and "persistent_load" in vars(dfl.RestrictedUnpickler)
    marker = tmp_path / "ran"
    for protocol in range(0, pickle.HIGHEST_PROTOCOL + 1):
        payload = pickle.dumps({"landmarks": _RunsCode(f"touch {marker}")}, protocol=protocol)
        with pytest.raises(MetadataError, match="refused"):
            dfl.restricted_loads(payload)
    by_hand = f"cos\nsystem\n(S'touch {marker}'\ntR.".encode()
    with pytest.raises(MetadataError, match="refused"):
        dfl.restricted_loads(by_hand)
    for module, name in (("builtins", "eval"), ("builtins", "getattr"), ("subprocess", "Popen"), ("numpy", "load"),
                         ("numpy.testing", "assert_equal"), ("posix", "system"), ("io", "open")):
        with pytest.raises(MetadataError, match="refused"):
            dfl.restricted_loads(f"c{module}\n{name}\n(S'x'\ntR.".encode())
    # persistent ids and other codecs than protocol 2's latin1 bytes are refused too
    with pytest.raises(MetadataError, match="refused"):
        dfl.restricted_loads(b"P0\n.")
    with pytest.raises(MetadataError):
        dfl.restricted_loads(b"c_codecs\nencode\n(S'x'\nS'rot13'\ntR.")
    # through the importer, in a face file: skipped, nothing run, the file left alone
    face = container.encode_image(np.full((32, 32, 3), 90, np.uint8), ".jpg")
    payload = pickle.dumps({"face_type": "whole_face", "landmarks": _RunsCode(f"touch {marker}")})
    src = tmp_path / "dfl"
    src.mkdir()
    (src / "evil.jpg").write_bytes(_with_segment(face, 0xEF, payload))
    res = dfl.import_dfl(src, tmp_path / "out", identity=False)
    assert res.imported == [] and "refused" in res.skipped[0][1]
    assert not marker.exists()


# =============================================================================================================
# 2. Fuzzing the metadata readers
# =============================================================================================================

FACE_SIZE = 64
FACE_TYPES = set(values(FaceType))


@contextlib.contextmanager
def time_limit(seconds: float):
    """Fail (instead of hanging the run) when the block takes longer than `seconds`."""
    def alarm(_sig, _frame):
        raise TimeoutError(f"a metadata reader ran longer than {seconds} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _with_segment(jpeg: bytes, marker: int, body: bytes) -> bytes:
    """`jpeg` with one more segment (marker, body) right after SOI, as the original tool writes APP15."""
    return jpeg[:2] + bytes([0xFF, marker]) + struct.pack(">H", len(body) + 2) + body + jpeg[2:]


def _png_chunk(ctype: bytes, body: bytes, crc: int | None = None) -> bytes:
    crc = zlib.crc32(ctype + body) & 0xFFFFFFFF if crc is None else crc
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", crc)


def _png_insert(png: bytes, chunks: bytes) -> bytes:
    at = png.rindex(b"IEND") - 4
    return png[:at] + chunks + png[at:]


@dataclasses.dataclass
class Bases:
    """Real face files made with the project's own writers from a crop of single_face.jpg."""

    image: np.ndarray
    record: container.FaceRecord
    files: dict[str, bytes]            # name -> bytes
    hot: dict[str, list[tuple[int, int]]]   # name -> byte ranges holding metadata (mutated more often)
    dfl_info: dict
    plain_jpg: bytes
    plain_png: bytes
    folder: Path                       # scratch folder for the readers that take a path


@pytest.fixture(scope="module")
def bases(media, tmp_path_factory) -> Bases:
    import cv2

    from facedouble.faces.find import FaceFinder

    frame = cv2.cvtColor(cv2.imread(str(media / "single_face.jpg"), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    found = FaceFinder("auto").find(frame)[0]
    lm = found.landmarks.astype(np.float32)
    m = align.face_matrix(lm, "whole-face", FACE_SIZE)
    image = align.warp_to_face(frame, m, FACE_SIZE)
    rng = np.random.default_rng(4)
    record = container.FaceRecord(
        face_type="whole-face", size=FACE_SIZE, landmarks=align.transform_points(lm, m).astype(np.float32),
        source_landmarks=lm, matrix=m, source_filename="000001.png",
        source_rect=tuple(int(v) for v in found.rect), source_size=(frame.shape[1], frame.shape[0]),
        face_index=0, detector="auto", landmarker="auto", identity=rng.normal(size=128).astype(np.float32),
        mask_polys=[[[2.0, 2.0], [60.0, 3.0], [30.0, 62.0]]], extra={"yaw": 1.5, "blur": 3.25})
    folder = tmp_path_factory.mktemp("fuzz")
    files: dict[str, bytes] = {}
    for suffix in (".jpg", ".png"):
        files["face" + suffix] = container.write_face(folder / f"face{suffix}", image, record).read_bytes()
    # a record too large for one JPEG segment: several APP9 parts
    big = dataclasses.replace(record, mask_polys=[[[float(i % 64), float(i // 100)] for i in range(5000)]])
    files["multi.jpg"] = container.write_face(folder / "multi.jpg", image, big).read_bytes()
    assert files["multi.jpg"].count(container.IDENT) >= 2
    dfl_info = {
        "face_type": "whole_face", "landmarks": record.landmarks, "source_filename": "00001.png",
        "source_rect": tuple(int(v) for v in found.rect), "source_landmarks": lm, "image_to_face_mat": m,
        "eyebrows_expand_mod": 1.0,
        "seg_ie_polys": {"polys": [{"type": 1, "pts": np.array([[1, 1], [60, 2], [30, 60]], np.float32)},
                                   {"type": 0, "pts": [[20.0, 20.0], [30.0, 20.0], [25.0, 30.0]]}]},
        "xseg_mask": container.encode_image(np.pad(np.full((16, 16), 255, np.uint8), 8), ".png"),
    }
    plain_jpg = container.encode_image(image, ".jpg")
    plain_png = container.encode_image(image, ".png")
    files["dfl.jpg"] = _with_segment(plain_jpg, 0xEF, pickle.dumps(dfl_info, protocol=2))
    files["dfl4.jpg"] = _with_segment(plain_jpg, 0xEF, pickle.dumps(dfl_info, protocol=4))
    hot: dict[str, list[tuple[int, int]]] = {}
    for name, data in files.items():
        if name.endswith(".jpg"):
            hot[name] = [(0, data.index(b"\xff\xda") + 4)]
        else:
            at = data.index(b"iTXt") - 4
            hot[name] = [(0, 41), (at, len(data))]
    # the readers accept what the writers made
    assert container.read_record(folder / "face.png").to_bytes() == record.to_bytes()
    assert container.read_record(folder / "multi.jpg").to_bytes() == big.to_bytes()
    assert dfl.dfl_metadata(files["dfl.jpg"])["face_type"] == "whole_face"
    return Bases(image, record, files, hot, dfl_info, plain_jpg, plain_png, folder)


def assert_valid_record(rec) -> None:
    """What every reader promises about a record it returns."""
    assert isinstance(rec, container.FaceRecord)
    assert rec.face_type in FACE_TYPES
    assert isinstance(rec.size, int) and not isinstance(rec.size, bool) and rec.size > 0
    for arr, shape, dtype in ((rec.landmarks, (68, 2), np.float32), (rec.source_landmarks, (68, 2), np.float32),
                              (rec.matrix, (2, 3), np.float64)):
        assert isinstance(arr, np.ndarray) and arr.shape == shape and arr.dtype == dtype and np.isfinite(arr).all()
    assert abs(np.linalg.det(rec.matrix[:, :2])) > 0
    assert isinstance(rec.source_filename, str) and "/" not in rec.source_filename and "\\" not in rec.source_filename
    assert "\x00" not in rec.source_filename and rec.source_filename not in (".", "..")
    assert isinstance(rec.source_rect, tuple) and len(rec.source_rect) == 4
    assert all(isinstance(v, int) and not isinstance(v, bool) for v in rec.source_rect)
    assert isinstance(rec.source_size, tuple) and len(rec.source_size) == 2
    assert all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in rec.source_size)
    assert isinstance(rec.face_index, int) and not isinstance(rec.face_index, bool) and rec.face_index >= 0
    assert isinstance(rec.detector, str) and isinstance(rec.landmarker, str)
    if rec.identity is not None:
        assert rec.identity.shape == (128,) and rec.identity.dtype == np.float32 and np.isfinite(rec.identity).all()
    assert isinstance(rec.mask_polys, list)
    for poly in rec.mask_polys:
        assert isinstance(poly, list)
        for point in poly:
            assert isinstance(point, list) and len(point) == 2
            assert all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in point)
    assert isinstance(rec.extra, dict) and all(isinstance(k, str) for k in rec.extra)
    assert rec.version == record.FORMAT_VERSION
    # what was read can be written and read back unchanged
    raw = rec.to_bytes()
    assert container.FaceRecord.from_bytes(raw).to_bytes() == raw


def _outcome(fn, *args, allowed=(MetadataError,), seconds: float = 10.0):
    """fn(*args) under a time limit: its value, or the exception when it is one of `allowed`. Any other
    exception fails the test (with hypothesis showing the input)."""
    try:
        with time_limit(seconds):
            return fn(*args)
    except allowed as e:
        assert isinstance(e, FaceDoubleError) and e.message and str(e) == e.message
        return e


def check_bytes(b: Bases, data: bytes) -> None:
    """Every bytes-level reader on `data`, and the path-level ones on `data` saved as .jpg and .png."""
    raws = []
    for fn in (container.record_bytes, container.jpeg_record_bytes, container.png_record_bytes):
        out = _outcome(fn, data)
        assert out is None or isinstance(out, (bytes, MetadataError)), type(out)
        if isinstance(out, bytes):
            raws.append(out)
    for raw in raws:
        rec = _outcome(container.FaceRecord.from_bytes, raw)
        if not isinstance(rec, MetadataError):
            assert_valid_record(rec)
    # the writers parse the file too (update_record, import): bytes or MetadataError
    out = _outcome(container.with_record, data, None)
    assert isinstance(out, (bytes, MetadataError))
    info = _outcome(dfl.dfl_metadata, data)
    assert info is None or isinstance(info, (dict, MetadataError))
    if isinstance(info, dict):
        check_dfl_info(info)
    for path in (b.folder / "fuzzed.jpg",):        # the readers go by the bytes, not the suffix
        path.write_bytes(data)
        rec = _outcome(container.read_record, path)
        if isinstance(rec, MetadataError):
            assert str(path) in rec.message          # names the file
        elif rec is not None:
            assert_valid_record(rec)
        # read_face also decodes the pixels: a file it cannot decode is an InputError (documented there)
        out = _outcome(container.read_face, path, allowed=(MetadataError, InputError))
        if isinstance(out, tuple):
            image, rec = out
            assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
            assert_valid_record(rec)
        else:
            assert str(path) in out.message


def check_dfl_info(info: dict, size: tuple[int, int] = (FACE_SIZE, FACE_SIZE)) -> None:
    rec = _outcome(dfl.dfl_record, info, size)
    if not isinstance(rec, MetadataError):
        assert_valid_record(rec)


def check_dfl_file(b: Bases, data: bytes) -> None:
    """The importer on one file: it imports it (and the result reads back as a valid face) or skips it with a
    reason; it never raises for a bad file."""
    src, out = b.folder / "dfl-in", b.folder / "dfl-out"
    src.mkdir(exist_ok=True)
    out.mkdir(exist_ok=True)
    for p in (*src.iterdir(), *out.iterdir()):
        p.unlink()
    (src / "face.jpg").write_bytes(data)
    with time_limit(20):
        res = dfl.import_dfl(src, out, identity=False)
    assert len(res.imported) + len(res.skipped) == 1
    if res.imported:
        image, rec = container.read_face(res.imported[0])
        assert_valid_record(rec)
        assert image.shape[:2] == (rec.size, rec.size) or rec.size == image.shape[1]
        assert dfl.dfl_metadata(res.imported[0].read_bytes()) is None
    else:
        assert res.skipped[0][1]
    info = _outcome(dfl.dfl_metadata, data)
    if isinstance(info, dict):
        check_dfl_info(info)


# -- strategies ------------------------------------------------------------------------------------------

INTERESTING_BYTES = [0x00, 0x01, 0x02, 0x7F, 0x80, 0xD8, 0xD9, 0xDA, 0xE9, 0xEF, 0xFE, 0xFF]


@st.composite
def mutated(draw, b: Bases, names: list[str] | None = None) -> bytes:
    """A real face file with 1-6 random edits: byte flips, interesting bytes, overwrites, insertions,
    deletions, duplications, truncation; positions mostly in the metadata."""
    name = draw(st.sampled_from(names or sorted(b.files)))
    buf = bytearray(b.files[name])
    for _ in range(draw(st.integers(1, 6))):
        if not buf:
            break
        lo, hi = draw(st.sampled_from(b.hot[name] * 3 + [(0, len(buf))]))
        hi = max(1, min(hi, len(buf)))
        lo = min(lo, hi - 1)
        pos = draw(st.integers(lo, hi - 1))
        op = draw(st.sampled_from(["flip", "byte", "overwrite", "insert", "delete", "dup", "truncate"]))
        if op == "flip":
            buf[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "byte":
            buf[pos] = draw(st.sampled_from(INTERESTING_BYTES))
        elif op == "overwrite":
            chunk = draw(st.binary(min_size=1, max_size=16))
            buf[pos:pos + len(chunk)] = chunk
        elif op == "insert":
            buf[pos:pos] = draw(st.binary(min_size=1, max_size=64))
        elif op == "delete":
            del buf[pos:pos + draw(st.integers(1, 64))]
        elif op == "dup":
            n = draw(st.integers(1, 64))
            buf[pos:pos] = buf[pos:pos + n]
        else:
            del buf[pos:]
    return bytes(buf)


def random_files(b: Bases):
    return st.one_of(
        st.binary(max_size=2048),
        st.binary(max_size=2048).map(lambda x: b"\xff\xd8" + x),
        st.binary(max_size=2048).map(lambda x: container.PNG_SIGNATURE + x),
        st.binary(max_size=512).map(lambda x: b"\xff\xd8\xff\xe9" + x),
    )


JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.sampled_from([10**400, -(10**30), 2**63, float("nan"), float("inf"), -0.0, "", "0",
                                           "1e999", "NaN", "../../etc/passwd", "a/b.png", "..", "x\x00y"]),
)
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=6)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=6), max_leaves=40)


def _shaped(shape, elements):
    """Nested lists of `shape`, elements from `elements`."""
    if not shape:
        return elements
    return st.lists(_shaped(shape[1:], elements), min_size=shape[0], max_size=shape[0])


ODD_NUMBERS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(),
                        st.sampled_from([10**400, "1", None, True, [1], {}]))
FIELD_VALUES = st.one_of(
    JSON_VALUES,
    st.sampled_from([(68, 2), (68, 3), (2, 3), (3, 3), (128,), (4,), (2,), (1, 2), (0,)]).flatmap(
        lambda shape: _shaped(shape, st.one_of(st.floats(-1e3, 1e3), ODD_NUMBERS))),
    st.lists(st.lists(st.lists(ODD_NUMBERS, max_size=3), max_size=4), max_size=3),
)
RECORD_KEYS = [f.name for f in dataclasses.fields(container.FaceRecord)] + ["unknown"]


@st.composite
def record_json(draw, b: Bases) -> dict:
    """The valid record as JSON with 1-4 fields replaced by odd values or removed."""
    obj = json.loads(b.record.to_bytes())
    for _ in range(draw(st.integers(1, 4))):
        key = draw(st.sampled_from(RECORD_KEYS))
        if draw(st.booleans()) and key in obj:
            del obj[key]
        else:
            obj[key] = draw(FIELD_VALUES)
    return obj


# -- the fuzz tests ---------------------------------------------------------------------------------------

def _fuzz_random_bytes(b: Bases, data) -> None:
    check_bytes(b, data.draw(random_files(b)))


def _fuzz_mutated_faces(b: Bases, data) -> None:
    check_bytes(b, data.draw(mutated(b)))


def _fuzz_jpeg_app9(b: Bases, data) -> None:
    """A valid JPEG with 1-4 APP9 segments of ours holding random part numbers, counts and payloads (random
    bytes, slices of a valid record, garbage JSON), or a header cut short."""
    raw = b.record.to_bytes()
    payloads = st.one_of(st.binary(max_size=200), st.just(raw), st.integers(0, len(raw)).map(lambda k: raw[:k]),
                         JSON_VALUES.map(lambda v: json.dumps(v).encode()),
                         record_json(b).map(lambda v: json.dumps(v).encode()))
    jpg = b.plain_jpg
    for _ in range(data.draw(st.integers(1, 4))):
        if data.draw(st.integers(0, 5)) == 0:
            body = container.IDENT + data.draw(st.binary(max_size=3))
        else:
            index = data.draw(st.sampled_from([0, 0, 1, 2, 7, 0xFFFF]))
            count = data.draw(st.sampled_from([0, 1, 1, 2, 3, 0xFFFF]))
            body = container.IDENT + struct.pack(">HH", index, count) + data.draw(payloads)
        jpg = _with_segment(jpg, container.APP_MARKER, body)
    check_bytes(b, jpg)
    # and through the writer, which splits any payload into well-formed parts
    check_bytes(b, container.jpeg_with_record(b.plain_jpg, data.draw(payloads)))


def _fuzz_png_itxt(b: Bases, data) -> None:
    """A valid PNG with iTXt chunks of ours: random flags, language tags, compressed or not, with random,
    truncated, garbage-JSON or odd-record text, right or wrong CRC."""
    raw = b.record.to_bytes()
    texts = st.one_of(st.binary(max_size=200), st.just(raw), JSON_VALUES.map(lambda v: json.dumps(v).encode()),
                      record_json(b).map(lambda v: json.dumps(v).encode()))
    chunks = b""
    for _ in range(data.draw(st.integers(1, 3))):
        text = data.draw(texts)
        flag = data.draw(st.sampled_from([0, 0, 1, 1, 2, 255]))
        if flag:
            text = zlib.compress(text)
            if data.draw(st.booleans()):
                text = text[:data.draw(st.integers(0, len(text)))]
        keyword = data.draw(st.sampled_from([container.PNG_KEYWORD, container.PNG_KEYWORD, b"Comment", b""]))
        rest = data.draw(st.sampled_from([b"\x00\x00", b"\x00", b"en\x00\x00", b"\x00\x00\x00\x00", b""]))
        body = keyword + b"\x00" + bytes([flag, data.draw(st.sampled_from([0, 0, 8]))]) + rest + text
        if data.draw(st.integers(0, 4)) == 0:
            body = body[:data.draw(st.integers(0, len(body)))]
        crc = None if data.draw(st.booleans()) else data.draw(st.integers(0, 2**32 - 1))
        chunks += _png_chunk(b"iTXt", body, crc)
    check_bytes(b, _png_insert(b.plain_png, chunks))
    check_bytes(b, container.png_with_record(b.plain_png, data.draw(texts)))


def _fuzz_record_json(b: Bases, data) -> None:
    """Valid JSON with wrong types, missing keys, NaN, infinities and huge numbers: from_json directly, and
    inside a PNG and a JPEG."""
    obj = data.draw(st.one_of(record_json(b), JSON_VALUES))
    rec = _outcome(container.FaceRecord.from_json, obj)
    if not isinstance(rec, MetadataError):
        assert_valid_record(rec)
    raw = json.dumps(obj).encode()
    check_bytes(b, container.png_with_record(b.plain_png, raw))
    check_bytes(b, container.jpeg_with_record(b.plain_jpg, raw))


def _laughs(depth: int) -> list:
    """A list holding the same list twice, `depth` levels deep: tiny pickled, 2**depth values expanded."""
    x: list = [[0.0, 0.0]] * 68
    for _ in range(depth):
        x = [x, x]
    return x


def _loop() -> list:
    x: list = [1.0, 2.0]
    x.append(x)
    return x


PICKLE_VALUES = st.one_of(
    FIELD_VALUES,
    st.sampled_from([_laughs(30), _laughs(3), _loop(), np.empty((10**9, 10**9), "V0"),
                     np.empty((68, 2), np.dtype(("f4", (0,))))]),
    st.binary(max_size=64),
    st.sampled_from([np.float32("nan"), np.float64(np.inf), np.int64(2**62), np.zeros((68, 2), np.float32),
                     np.full((68, 2), np.nan, np.float32), np.zeros((2, 3)), np.zeros((2, 2)), np.zeros(0),
                     np.ones((68, 2), np.complex64), np.array(["a"] * 136, object).reshape(68, 2),
                     np.zeros((68, 2), bool), np.eye(2, 3) * 0, (1, 2, 3, 4), (1.5, float("inf"), 2, 3),
                     {"polys": [{"type": "x", "pts": [[1, 2]]}]}, {"polys": [{"type": 1, "pts": "abc"}]},
                     [(1, [[1, 2], [3, 4], [5]])], b"", b"\x89PNG\r\n\x1a\n", np.zeros((0, 5), np.uint8),
                     np.zeros((4, 4, 0), np.uint8), np.full((8, 8), 300.0), np.zeros((8, 8), np.float16)]),
)
DFL_KEYS = ["face_type", "landmarks", "source_filename", "source_rect", "source_landmarks", "image_to_face_mat",
            "eyebrows_expand_mod", "seg_ie_polys", "ie_polys", "xseg_mask", "unknown"]


@st.composite
def dfl_info(draw, b: Bases) -> dict:
    info = dict(b.dfl_info)
    for _ in range(draw(st.integers(1, 4))):
        key = draw(st.sampled_from(DFL_KEYS))
        if draw(st.integers(0, 3)) == 0:
            info.pop(key, None)
        else:
            info[key] = draw(PICKLE_VALUES)
    return info


def _fuzz_dfl(b: Bases, data) -> None:
    """DFL faces: the metadata dict with odd values (directly, and pickled into a face for the importer),
    APP15 payloads of random bytes or cut pickles, and mutated real DFL faces."""
    info = data.draw(dfl_info(b))
    check_dfl_info(info)
    protocol = data.draw(st.integers(2, 5))
    kind = data.draw(st.sampled_from(["dict", "value", "bytes", "cut", "mutated"]))
    if kind == "dict":
        payload = pickle.dumps(info, protocol=protocol)
    elif kind == "value":
        payload = pickle.dumps(data.draw(PICKLE_VALUES), protocol=protocol)
    elif kind == "bytes":
        payload = data.draw(st.binary(max_size=300))
    else:
        payload = pickle.dumps(b.dfl_info, protocol=protocol)
        payload = payload[:data.draw(st.integers(0, len(payload)))]
    face = data.draw(mutated(b, ["dfl.jpg", "dfl4.jpg"])) if kind == "mutated" else \
        _with_segment(b.plain_jpg, 0xEF, payload)
    out = _outcome(dfl.restricted_loads, payload)
    assert not isinstance(out, BaseException) or isinstance(out, MetadataError)
    check_dfl_file(b, face)


FUZZERS = {
    "random_bytes": _fuzz_random_bytes,
    "mutated_faces": _fuzz_mutated_faces,
    "jpeg_app9": _fuzz_jpeg_app9,
    "png_itxt": _fuzz_png_itxt,
    "record_json": _fuzz_record_json,
    "dfl": _fuzz_dfl,
}


@pytest.mark.parametrize("kind", list(FUZZERS))
@FUZZ
@given(data=st.data())
def test_fuzz_metadata_readers(bases, kind, data):
    FUZZERS[kind](bases, data)


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(FUZZERS))
@FUZZ_SLOW
@given(data=st.data())
def test_fuzz_metadata_readers_long(bases, kind, data):
    FUZZERS[kind](bases, data)


# -- the cases fuzzing found, pinned ---------------------------------------------------------------------

def test_png_decompression_bomb_is_refused_quickly(bases):
    """A compressed iTXt that inflates to 256 MiB is refused without inflating it all."""
    comp = zlib.compressobj(1)
    block = bytes(1 << 20)
    bomb = b"".join(comp.compress(block) for _ in range(256)) + comp.flush()
    body = container.PNG_KEYWORD + b"\x00\x01\x00\x00\x00" + bomb
    png = _png_insert(bases.plain_png, _png_chunk(b"iTXt", body))
    t0 = time.perf_counter()
    with pytest.raises(MetadataError, match="too large"):
        container.png_record_bytes(png)
    assert time.perf_counter() - t0 < 5


@pytest.mark.parametrize("raw", [
    b"[" * 100_000, b'{"a":' * 100_000, b"\xff\xfe", b"1e999", b"NaN", b"",
    json.dumps({"face_type": "whole-face", "size": float("inf")}).encode(),
])
def test_hostile_json_is_a_metadata_error(raw):
    with time_limit(10):
        with pytest.raises(MetadataError):
            container.FaceRecord.from_bytes(raw)


@pytest.mark.parametrize("field,value", [
    ("size", float("inf")), ("size", 0), ("size", "64"), ("size", True), ("landmarks", [[10**400, 0]] * 68),
    ("matrix", [[0, 0, 0], [0, 0, 0]]), ("source_rect", [1, 2, 3]), ("source_rect", "1234"),
    ("source_rect", [1, 2, 3, float("nan")]), ("source_size", [1]), ("source_size", [-1, 5]),
    ("face_index", -1), ("face_type", "mark_only"), ("face_type", ["whole-face"]),
    ("source_filename", "../../etc/passwd.png"), ("source_filename", 5), ("mask_polys", "abc"),
    ("mask_polys", [[[1, float("nan")]]]), ("mask_polys", [[[1, 2, 3]]]), ("extra", [["a", 1]]),
    ("identity", [0.0] * 127), ("version", 1.0), ("detector", {"a": 1}),
])
def test_invalid_record_fields_are_refused(bases, field, value):
    obj = json.loads(bases.record.to_bytes())
    obj[field] = value
    with pytest.raises(MetadataError):
        container.FaceRecord.from_json(obj)


@pytest.mark.parametrize("value", [
    pytest.param(np.empty((10**9, 10**9), "V0"), id="zero-byte-items"),
    pytest.param(np.empty((10**5, 10**5), np.dtype(("f4", (0,)))), id="zero-size-subarray"),
    pytest.param(_laughs(40), id="shared-lists"),
    pytest.param({"a": [_laughs(30)] * 3}, id="shared-nested"),
    pytest.param(_loop(), id="contains-itself"),
])
def test_pickles_that_expand_are_refused_quickly(bases, value):
    """A few hundred bytes of pickle must not stand for billions of values (before the bound, one of 1.7 kB
    took a minute and 9 GB in dfl_record)."""
    for protocol in (2, 4, 5):
        payload = pickle.dumps({**bases.dfl_info, "landmarks": value, "seg_ie_polys": [(1, value)]}, protocol)
        assert len(payload) < 10_000
        with time_limit(5):
            with pytest.raises(MetadataError, match="refused"):
                dfl.restricted_loads(payload)
            check_dfl_file(bases, _with_segment(bases.plain_jpg, 0xEF, payload))


def test_image_claiming_a_huge_size_is_refused_before_decoding(bases):
    """A face whose JPEG header claims 30000 x 30000 pixels is an InputError, not gigabytes allocated; also
    when the segments before the frame header are broken (a decoder skips such garbage, and the DFL reader
    stops at APP15 before it)."""
    def huge(data: bytes, junk: bytes = b"") -> bytes:
        at = data.index(b"\xff\xc0") if b"\xff\xc0" in data else data.index(b"\xff\xc2")
        return data[:at] + junk + data[at:at + 5] + struct.pack(">HH", 30000, 30000) + data[at + 9:]

    path = bases.folder / "huge.jpg"
    path.write_bytes(huge(bases.files["face.jpg"]))
    with time_limit(5), pytest.raises(InputError, match="30000 x 30000"):
        container.read_face(path)
    for data in (huge(bases.plain_jpg, b"junk"), huge(bases.files["dfl.jpg"], b"junk")):
        with time_limit(5), pytest.raises(InputError, match="30000 x 30000"):
            container.decode_image(data)
    with time_limit(5):
        check_dfl_file(bases, huge(bases.files["dfl.jpg"], b"junk"))
    with pytest.raises(InputError, match="not a PNG or JPEG"):
        container.decode_image(b"BM" + bytes(100))


def test_jpeg_part_header_cut_short(bases):
    jpg = _with_segment(bases.plain_jpg, container.APP_MARKER, container.IDENT + b"\x00")
    with pytest.raises(MetadataError):
        container.jpeg_record_bytes(jpg)


@pytest.mark.parametrize("key,value", [
    ("face_type", ["whole_face"]), ("landmarks", {"a": 1}), ("landmarks", np.array(["a"] * 136, object).reshape(68, 2)),
    ("image_to_face_mat", "abc"), ("source_rect", (1, 2, float("inf"), 4)), ("source_filename", np.zeros(3)),
    ("seg_ie_polys", np.zeros((2, 2))), ("seg_ie_polys", {"polys": [{"type": "x", "pts": [[1, 1], [5, 1], [3, 4]]}]}),
    ("xseg_mask", b""), ("xseg_mask", np.zeros((4, 4, 0), np.uint8)), ("eyebrows_expand_mod", 10**400),
])
def test_odd_dfl_values_are_imported_or_refused(bases, key, value):
    info = {**bases.dfl_info, key: value}
    check_dfl_info(info)
    check_dfl_file(bases, _with_segment(bases.plain_jpg, 0xEF, pickle.dumps(info)))


# =============================================================================================================
# 3. The web UI: traversal, tokens, cross-site requests
# =============================================================================================================

SECRET = b"TOPSECRET-7f3a"


@pytest.fixture()
def sec_ws(tmp_path, media):
    """A small workspace (one frame, one face, a training preview, a result) and, beside it, secret files that
    symlinks inside the workspace point to."""
    import cv2

    from facedouble.workspace import Workspace

    ws = Workspace(tmp_path / "ws").create()
    outside = tmp_path / "outside"
    outside.mkdir()
    photo = cv2.imread(str(media / "single_face.jpg"), cv2.IMREAD_COLOR)[150:450, 120:420]
    jpg = cv2.imencode(".jpg", photo)[1].tobytes()
    png = cv2.imencode(".png", cv2.resize(photo, (64, 64)))[1].tobytes()
    for name, data in (("secret.jpg", jpg), ("secret.png", png), ("secret.mp4", b""), ("secret.json", b"")):
        (outside / name).write_bytes(data + SECRET)
    (ws.frames("dst") / "000001.png").write_bytes(png)
    rng = np.random.default_rng(0)
    rec = container.FaceRecord(face_type="whole-face", size=64, landmarks=rng.uniform(5, 60, (68, 2)).astype(np.float32),
                          source_landmarks=rng.uniform(5, 60, (68, 2)).astype(np.float32), matrix=np.eye(2, 3),
                          source_filename="000001.png", source_rect=(0, 0, 64, 64))
    for side in ("src", "dst"):
        container.write_face(ws.aligned(side) / "000001_0.jpg", cv2.resize(photo, (64, 64))[..., ::-1].copy(), rec)
    (ws.model / "history").mkdir()
    (ws.model / "history" / "sae_00000001.png").write_bytes(png)
    (ws.root / "result.mov").write_bytes(b"\x00" * 2000)
    links = {ws.aligned("src") / "escape.jpg": outside / "secret.jpg",
             ws.aligned_trash("src") / "escape.jpg": outside / "secret.jpg",
             ws.frames("dst") / "escape.png": outside / "secret.png",
             ws.model / "history" / "escape.png": outside / "secret.png",
             ws.root / "result.mp4": outside / "secret.mp4",
             ws.root / "escape.jpg": outside / "secret.jpg",
             ws.root / "escape.png": outside / "secret.png",
             ws.root / "linkdir": outside}
    for link, target in links.items():
        link.symlink_to(target)
    return ws, outside


def _client(ws, **kw):
    """The app on `ws` with the token cookie set, as support.client.make_client, but a crash in a route is
    a 500 response (judged by the assertions) rather than an exception inside the test."""
    from fastapi.testclient import TestClient
    from support.client import TOKEN
    from support.swappers import identity_factory

    from facedouble.web.app import create_app

    app = create_app(ws.root, token=TOKEN, hosts=("testserver",),
                     swapper_factory=kw.pop("swapper_factory", identity_factory), **kw)
    client = TestClient(app, raise_server_exceptions=False)
    client.cookies.set("facedouble_token", TOKEN)
    return client


def _routes(app):
    """(method, path template) of every route of the app."""
    from starlette.routing import Route

    out = []
    for r in app.routes:
        assert isinstance(r, Route), f"unexpected route type {type(r).__name__}: new kinds of route need a test here"
        for method in sorted(r.methods or {"GET"}):
            if method != "HEAD":
                out.append((method, r.path))
    return out


FILL = {"side": "src", "name": "000001_0.jpg", "stage": "merge", "number": "1"}


def _fill(template: str, **values) -> str:
    out = template
    for key, value in {**FILL, **values}.items():
        out = out.replace("{" + key + "}", value)
    assert "{" not in out, f"route {template} has a path parameter this test does not know; add it to FILL"
    return out


def _refused(resp) -> bool:
    return resp.status_code in (400, 403, 404, 422) and SECRET not in resp.content


def _traversal_names(outside: Path) -> list[str]:
    return ["..%2F..%2F..%2Foutside%2Fsecret.jpg", "%2e%2e%2f%2e%2e%2f%2e%2e%2foutside%2fsecret.png",
            "..%5C..%5Coutside%5Csecret.jpg", quote(str(outside / "secret.jpg"), safe=""), "%2Fetc%2Fpasswd",
            "..", "%2e%2e", ".%2e", "escape.jpg", "escape.png", "result.mp4", "x%00.jpg", "..%2F"]


# a valid body for the routes that take one (an empty label set: clears the face's labels)
BODIES = {("PUT", "/api/xseg/{side}/labels/{name}"): {"include": [], "exclude": []}}


def test_every_name_route_refuses_traversal(sec_ws):
    ws, outside = sec_ws
    c = _client(ws)
    routes = [(m, p) for m, p in _routes(c.app) if "{name}" in p]
    assert len(routes) >= 8, routes
    valid = {"/static/{name}": "app.js", "/api/frames/{side}/image/{name}": "000001.png",
             "/api/frames/{side}/faces/{name}": "000001.png", "/api/train/history/{name}": "sae_00000001.png",
             "/api/result/{name}": "result.mov"}
    for method, template in routes:
        ok_url = _fill(template, name=valid.get(template, "000001_0.jpg"),
                       side="dst" if "/frames/" in template else "src")
        body = BODIES.get((method, template))
        assert c.request(method, ok_url, json=body).status_code == 200, ok_url  # the route does serve files
        for side in ("src", "dst"):
            for name in _traversal_names(outside):
                for query in ("", "?folder=trash", "?folder=..%2F..%2Foutside"):
                    url = _fill(template, side=side, name=name) + query
                    r = c.request(method, url)
                    assert SECRET not in r.content, url
                    # the client itself removes plain dot segments ("/static/.." asks for "/"): judge only the
                    # requests that still reached the route
                    if r.request.url.raw_path.decode().startswith(_fill(template.split("{name}")[0], side=side)):
                        assert _refused(r), (url, r.status_code, r.content[:200])


@pytest.mark.parametrize("path", [
    "../outside/secret.jpg", "escape.jpg", "escape.png", "linkdir", "linkdir/secret.jpg", "data_dst/escape.png",
    "data_src/aligned/escape.jpg", "data_dst/../../outside/secret.png", "OUTSIDE/secret.jpg",
    "WS/../outside/secret.jpg", "/etc/passwd", "data_dst/000001.png\x00.png",
])
def test_query_and_body_paths_refuse_traversal(sec_ws, path):
    """/api/file?path=, the paths in request bodies (verify, the manual editor, trash/restore) and the path
    options of every stage (report out=, merge model=, ...) refuse anything that leaves the workspace."""
    ws, outside = sec_ws
    plain = path.replace("OUTSIDE", str(outside)).replace("WS", str(ws.root))
    calls = []
    c = _client(ws, swapper_factory=lambda w, cfg: calls.append(cfg.model))
    assert _refused(c.get(f"/api/file?path={quote(plain, safe='')}"))
    assert _refused(c.post("/api/verify", json={"path": plain}))
    for route in ("landmarks", "confirm"):
        assert _refused(c.post(f"/api/manual/dst/{route}", json={"frame": plain, "rect": [0, 0, 30, 30]}))
    if "escape" not in plain and "linkdir" not in plain:       # a link itself may be moved; its target is never read
        for route in ("trash", "restore"):
            assert _refused(c.post(f"/api/faces/src/{route}", json={"names": [plain]}))
    # path options of the stages (report out=, merge model=, ...): refused before a job starts
    from facedouble.web.forms import PATH_OPTIONS, STAGE_CONFIGS

    for stage, cls in STAGE_CONFIGS.items():
        for option in PATH_OPTIONS.get(cls, ()):
            value = [plain] if option == "src" else plain
            r = c.post("/api/jobs", json={"stage": stage, "side": "src", "options": {option: value}})
            assert r.status_code in (400, 403), (stage, option, r.status_code, r.text)
    assert c.get("/api/job").json()["job"] is None
    assert _refused(c.post("/api/merge/config", json={"options": {"model": plain}}))
    assert not (ws.frames("dst") / "merge_config.json").exists()
    assert _refused(c.post("/api/merge/preview", json={"frame": 1, "options": {"model": plain}}))
    assert calls == []
    assert (ws.aligned("src") / "000001_0.jpg").is_file()


def test_encoded_query_paths_refuse_traversal(sec_ws):
    ws, outside = sec_ws
    c = _client(ws)
    assert c.get("/api/file?path=data_dst/000001.png").status_code == 200
    for raw in ("..%2Foutside%2Fsecret.jpg", "%2e%2e%2foutside%2fsecret.jpg", "%2E%2E/outside/secret.png",
                "data_dst%2F..%2F..%2Foutside%2Fsecret.png", quote(str(outside / "secret.jpg"), safe=""),
                "%2Fetc%2Fpasswd", "linkdir%2Fsecret.jpg", "escape.jpg"):
        r = c.get(f"/api/file?path={raw}")
        assert _refused(r), (raw, r.status_code)


def test_paths_inside_the_workspace_are_accepted(sec_ws):
    from facedouble.config import MergeConfig, ReportConfig
    from facedouble.web.forms import build_config

    ws, outside = sec_ws
    cfg = build_config(ReportConfig, {"out": "report2", "dst": str(ws.root / "data_dst")}, ws)
    assert cfg.out == str(ws.root / "report2") and cfg.dst == str(ws.root / "data_dst")
    # a path the CLI saved in the workspace's config (say, a model folder elsewhere) may come back unchanged
    saved = MergeConfig(model=str(outside))
    assert build_config(MergeConfig, {"model": str(outside)}, ws, saved).model == str(outside)
    from fastapi import HTTPException

    with pytest.raises(HTTPException):
        build_config(MergeConfig, {"model": str(outside / "other")}, ws, saved)


def test_every_path_option_is_confined():
    """Each string option of a stage the UI can run is either a path (and confined) or known not to be one, so
    a new path option cannot slip through unconfined."""
    import typing

    from facedouble.web.forms import PATH_OPTIONS, STAGE_CONFIGS, field_kind as _field_kind

    # ranges: per-frame merge options, which refuse every path option (merge/ranges.py)
    not_paths = {"device", "model_name", "start", "end", "ranges"}
    for cls in set(STAGE_CONFIGS.values()):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if _field_kind(hints[f.name])[0] in ("str", "other") and f.name not in not_paths:
                assert f.name in PATH_OPTIONS.get(cls, ()), f"{cls.__name__}.{f.name} is not confined"


def test_every_route_needs_the_token(sec_ws):
    """Missing token: 401; wrong token (header, cookie or query): 403; on every route, whatever its method, so
    a new route is covered without touching this test. Nothing is public, not even the page (the token in
    the URL printed by `facedouble ui` is the login)."""
    ws, _ = sec_ws
    c = _client(ws)
    c.cookies.clear()
    routes = _routes(c.app)
    assert len(routes) >= 25
    for method, template in routes:
        url = _fill(template)
        body = {"json": {"names": ["000001_0.jpg"], "stage": "sort", "side": "src"}} if method != "GET" else {}
        assert c.request(method, url, **body).status_code == 401, (method, url)
        assert c.request(method, url, headers={"X-Token": "wrong"}, **body).status_code == 403, (method, url)
        c.cookies.set("facedouble_token", "wrong")
        assert c.request(method, url, **body).status_code == 403, (method, url)
        c.cookies.clear()
        sep = "&" if "?" in url else "?"
        assert c.request(method, url + sep + "token=wrong", **body).status_code == 403, (method, url)
    assert (ws.aligned("src") / "000001_0.jpg").is_file()         # nothing moved
    assert c.get("/api/job", headers={"X-Token": "test-token-0123456789"}).json()["job"] is None


def test_every_route_refuses_cross_site_requests(sec_ws):
    """A foreign Host (DNS rebinding) is refused on every route even with the token; a state-changing request
    with a foreign Origin or a cross-site fetch is refused; no route answers with CORS headers."""
    ws, _ = sec_ws
    c = _client(ws)
    routes = _routes(c.app)
    hosts = ["evil.example", "evil.example:8765", "127.0.0.1.nip.io", "localhost.evil.example", "testserver.evil",
             "localhost:1@evil.example", "localhost:8765:80", "[::1]evil", ""]
    origins = ["http://evil.example", "null", "http://testserver.evil.example", "http://testserver:1",
               "file://", "http://testserver@evil.example", "chrome-extension://abc"]
    for method, template in routes:
        url = _fill(template)
        body = {"json": {"names": ["000001_0.jpg"], "stage": "sort", "side": "src"}} if method != "GET" else {}
        for host in hosts:
            r = c.request(method, url, headers={"Host": host}, **body)
            assert r.status_code == 403, (method, url, host, r.status_code)
        if method in ("GET", "HEAD", "OPTIONS"):
            r = c.request(method, url, headers={"Origin": "http://evil.example"})
            assert "access-control-allow-origin" not in r.headers
            continue
        for origin in origins:
            r = c.request(method, url, headers={"Origin": origin}, **body)
            assert r.status_code == 403, (method, url, origin, r.status_code)
        for site in ("cross-site", "same-site"):
            r = c.request(method, url, headers={"Sec-Fetch-Site": site}, **body)
            assert r.status_code == 403, (method, url, site, r.status_code)
    assert (ws.aligned("src") / "000001_0.jpg").is_file()         # nothing moved
    # the login link does not set the cookie for a foreign Host
    r = c.get("/?token=test-token-0123456789", headers={"Host": "evil.example"}, follow_redirects=False)
    assert r.status_code == 403 and "set-cookie" not in r.headers
    # the app's own origin still works
    ok = c.post("/api/faces/src/trash", json={"names": ["000001_0.jpg"]}, headers={"Origin": "http://testserver",
                                                                                     "Sec-Fetch-Site": "same-origin"})
    assert ok.status_code == 200 and ok.json()["moved"] == ["000001_0.jpg"]
