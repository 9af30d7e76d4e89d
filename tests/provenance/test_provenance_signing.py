"""C2PA content credentials on every image the merger writes (frames PNG/JPG, --export-alpha PNGs, masks, debug
images, previews), read back from the written files; an organisation's own certificate (--sign-cert/--sign-key,
made here as a CA + leaf with `cryptography`) named by `facedouble verify`; a bad certificate or key refused in
one sentence before any work."""

from __future__ import annotations

import datetime
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from facedouble.cli import app
from facedouble.config import MergeConfig, VideoBuildConfig
from facedouble.errors import ProvenanceError
from facedouble.merge import merger
from facedouble.provenance.credentials import read_manifest, signing_identity
from facedouble.provenance.verify import verify_file
from facedouble.workspace import Workspace
from support.client import make_client
from support.media import decode
from support.swappers import IdentitySwapper
from support.workspaces import N_FRAMES, write_dst_workspace

COMPOSITE = "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"
ORG, SIGNER = "Example Newsroom Ltd", "Example Newsroom signer"


def _name(cn: str, org: str):
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn), x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)])


def _pem(cert) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@pytest.fixture(scope="module")
def org(tmp_path_factory) -> dict[str, Path]:
    """An organisation's CA and a leaf certificate it issued (ECDSA P-256), as c2pa wants them: the leaf with
    digitalSignature, emailProtection and an authority key identifier; plus a stray key and a self-signed cert."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID

    folder = tmp_path_factory.mktemp("org")
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("Example Newsroom Root CA", "Example Newsroom CA")
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=90))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder().subject_name(_name(SIGNER, ORG)).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=90))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = {"cert": folder / "org.pem", "key": folder / "org.key", "other_key": folder / "other.key",
             "self_signed": folder / "self.pem", "self_key": folder / "self.key"}
    paths["cert"].write_bytes(_pem(leaf) + _pem(ca))
    paths["key"].write_bytes(_key_pem(key))
    paths["other_key"].write_bytes(_key_pem(ec.generate_private_key(ec.SECP256R1())))
    paths["self_signed"].write_bytes(_pem(ca))     # a CA certificate on its own: self-signed
    paths["self_key"].write_bytes(_key_pem(ca_key))
    return paths


def _valid(path: Path, run_id: str) -> dict:
    """The claims of `path`'s manifest, asserting it is valid and declares the image AI-generated."""
    info = read_manifest(path)
    assert info.state == "valid", (path, info.errors)
    claims = info.claims
    assert any(a.get("digitalSourceType") == COMPOSITE for a in claims["actions"]), claims["actions"]
    assert claims["training"]["run_id"] == run_id and claims["title"] == path.name
    return claims


def _run_id(ws) -> str:
    return json.loads((ws.frames("dst") / merger.RUN_NAME).read_text())["run_id"]


def test_merged_png_frames_masks_and_alpha_pngs_carry_valid_credentials(dst_ws, unmarked):
    ws = dst_ws
    merger.merge(ws, MergeConfig(mode="overlay", mask="dst"), swapper=IdentitySwapper(128))
    run_id = _run_id(ws)
    for folder in (ws.merged, ws.merged_mask):
        files = sorted(folder.iterdir())
        assert len(files) == N_FRAMES
        for path in files:
            claims = _valid(path, run_id)
            assert claims["trusted"]  # the local CA is this machine's trust anchor
            assert len(claims["training"]["sha256"]) == 64  # the training sets' fingerprint is recorded
    # the signed frame still decodes to the merged pixels: a face where the mask is, dst elsewhere
    dst = cv2.imread(str(ws.frames("dst") / "000002.png"))
    out = cv2.imread(str(ws.merged / "000002.png"))
    mask = cv2.imread(str(ws.merged_mask / "000002.png"), cv2.IMREAD_UNCHANGED)
    assert out.shape == dst.shape and np.array_equal(out[mask == 0], dst[mask == 0]) and (mask > 127).mean() > 0.05
    # any change after signing is caught
    data = bytearray((ws.merged / "000002.png").read_bytes())
    data[-40] ^= 0xFF
    (ws.merged / "000002.png").write_bytes(bytes(data))
    assert read_manifest(ws.merged / "000002.png").state == "invalid"

    merger.merge(ws, MergeConfig(mode="overlay", mask="dst", export_alpha=True, debug=True),
                 swapper=IdentitySwapper(128), force=True)
    run_id = _run_id(ws)
    rgba = cv2.imread(str(ws.merged / "000002.png"), cv2.IMREAD_UNCHANGED)
    assert rgba.shape[2] == 4 and np.array_equal(rgba[..., 3], cv2.imread(str(ws.merged_mask / "000002.png"),
                                                                          cv2.IMREAD_UNCHANGED))
    for path in sorted(ws.merged.glob("*.png")):
        _valid(path, run_id)
    debug = sorted((ws.frames("dst") / merger.DEBUG_DIR).iterdir())
    assert any(p.suffix == ".jpg" for p in debug) and any(p.suffix == ".png" for p in debug)
    for path in debug:
        _valid(path, run_id)


def test_merged_jpg_frames_and_the_preview_verify(tmp_path, media, monkeypatch):
    """Real marks (watermark and credentials) on JPG frames, read back by `verify` from the written files."""
    ws = Workspace(tmp_path / "ws")
    write_dst_workspace(ws, decode(media / "single_face.mp4", limit=3), suffix=".jpg")
    merger.merge(ws, MergeConfig(mode="seamless", mask="dst"), swapper=IdentitySwapper(128))
    run_id = _run_id(ws)
    assert sorted(p.name for p in ws.merged.iterdir()) == ["000001.jpg", "000002.jpg", "000003.jpg"]
    for path in sorted(ws.merged.iterdir()):
        report = verify_file(path)
        assert report.marked and report.watermark["found"] and report.c2pa["state"] == "valid"
        assert report.watermark["payload"]["run_id"] == run_id
        _valid(path, run_id)

    monkeypatch.setattr(merger, "load_swapper", lambda ws, cfg: IdentitySwapper(128))
    out = tmp_path / "preview.png"
    r = CliRunner().invoke(app, ["merge", "-w", str(ws.root), "--frame", "2", "--preview", str(out),
                                 "--mode", "overlay", "--mask", "dst"])
    assert r.exit_code == 0, r.output
    assert read_manifest(out).state == "valid" and verify_file(out).marked


def test_an_organisations_certificate_signs_frames_and_video_and_verify_names_it(dst_ws, unmarked, org, media,
                                                                                    monkeypatch):
    ws = dst_ws
    identity = signing_identity(org["cert"], org["key"])
    assert (identity.organisation, identity.alg, identity.local) == (ORG, "ES256", False)
    monkeypatch.setattr(merger, "load_swapper", lambda ws, cfg: IdentitySwapper(128))
    runner = CliRunner()
    r = runner.invoke(app, ["merge", "-w", str(ws.root), "--mode", "overlay", "--mask", "dst",
                            "--sign-cert", str(org["cert"]), "--sign-key", str(org["key"])])
    assert r.exit_code == 0, r.output
    saved = MergeConfig.load(ws.config_file(MergeConfig))
    assert (saved.sign_cert, saved.sign_key) == (str(org["cert"]), str(org["key"]))  # --config repeats it
    frame = ws.merged / "000003.png"
    claims = _valid(frame, _run_id(ws))
    assert claims["signer"]["common_name"] == SIGNER and claims["signer"]["issuer"] == ORG
    assert not claims["trusted"]  # not this machine's local CA
    r = runner.invoke(app, ["verify", str(frame)])
    assert r.exit_code == 0, r.output
    assert f"signed by: {SIGNER}, {ORG}" in r.output

    shutil.copy(media / "single_face.mp4", ws.root / "data_dst.mp4")
    r = runner.invoke(app, ["video", "build", "-w", str(ws.root), "--sign-cert", str(org["cert"]),
                            "--sign-key", str(org["key"])])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["verify", str(ws.root / "result.mp4")])
    assert r.exit_code == 0 and f"signed by: {SIGNER}, {ORG}" in r.output, r.output
    # the default stays the local certificate
    r = runner.invoke(app, ["video", "build", "-w", str(ws.root)])
    assert r.exit_code == 0, r.output
    assert read_manifest(ws.root / "result.mp4").claims["signer"]["common_name"] == "facedouble signer"


@pytest.mark.parametrize("which", ["mismatched key", "key alone", "self-signed", "not a certificate", "missing"])
def test_a_bad_certificate_or_key_is_refused_before_any_work(dst_ws, unmarked, org, monkeypatch, which):
    ws = dst_ws
    args = {"mismatched key": ["--sign-cert", str(org["cert"]), "--sign-key", str(org["other_key"])],
            "key alone": ["--sign-key", str(org["key"])],
            "self-signed": ["--sign-cert", str(org["self_signed"]), "--sign-key", str(org["self_key"])],
            "not a certificate": ["--sign-cert", str(org["key"]), "--sign-key", str(org["key"])],
            "missing": ["--sign-cert", str(org["cert"]) + ".nope", "--sign-key", str(org["key"])]}[which]
    expect = {"mismatched key": "does not belong to the certificate", "key alone": "go together",
              "self-signed": "self-signed", "not a certificate": "holds no PEM certificate",
              "missing": "cannot be read"}[which]
    loaded = []
    monkeypatch.setattr(merger, "load_swapper", lambda ws, cfg: loaded.append(1) or IdentitySwapper(128))
    runner = CliRunner()
    for command in (["merge", "-w", str(ws.root), "--mode", "overlay"], ["video", "build", "-w", str(ws.root)]):
        r = runner.invoke(app, command + args)
        assert r.exit_code == ProvenanceError.exit_code != 0, r.output
        assert expect in r.output and "Traceback" not in r.output, r.output
        assert len([line for line in r.output.splitlines() if line.strip()]) == 1, r.output  # one sentence
    assert not loaded and not any(ws.merged.iterdir()) and not (ws.root / "result.mp4").exists()  # no work done
    with pytest.raises(ProvenanceError, match=expect):
        merger.merge(ws, MergeConfig(mode="overlay", sign_cert=args[1] if len(args) > 2 else None,
                                     sign_key=args[-1]), swapper=IdentitySwapper(128))
    assert not any(ws.merged.iterdir())


def test_the_ui_form_has_the_signing_options_and_its_preview_is_signed(web_ws, tmp_path):
    from facedouble.web.forms import option_schema

    for cls in (MergeConfig, VideoBuildConfig):
        fields = {f["name"]: f for f in option_schema(cls)}   # what the UI builds its forms from
        assert fields["sign_cert"]["kind"] == fields["sign_key"]["kind"] == "str" and fields["sign_cert"]["optional"]
        assert "local facedouble certificate" in fields["sign_cert"]["help"]
        meta = {f: cls.__dataclass_fields__[f].metadata for f in ("sign_cert", "sign_key")}
        assert (meta["sign_cert"]["label"], meta["sign_key"]["label"]) == ("signing certificate", "signing key")
    c = make_client(web_ws)
    r = c.post("/api/merge/preview", json={"frame": 1, "options": {"mode": "overlay", "mask": "dst"}})
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    out = tmp_path / "ui_preview.jpg"
    out.write_bytes(r.content)
    assert read_manifest(out).state == "valid" and verify_file(out).marked
    # a key file outside the workspace cannot be named from the browser (paths are confined to the workspace)
    r = c.post("/api/merge/preview", json={"frame": 1, "options": {"sign_cert": "/etc/passwd", "sign_key": "/etc/passwd"}})
    assert r.status_code == 403
