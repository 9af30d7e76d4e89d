"""C2PA content credentials on result files (DESIGN.md section 6), with c2pa-python 0.38 (c2pa-rs 0.91).

Every result video (MP4, MOV, AVI) and exported image (PNG, JPEG) gets a signed manifest:
  * actions: `c2pa.opened` (the dst video, its parent ingredient) or `c2pa.created` when there is no parent,
    then `c2pa.edited` with digitalSourceType compositeWithTrainedAlgorithmicMedia, both with softwareAgent
    facedouble + version;
  * `org.facedouble.training`: the run id and the caller's SHA-256 of the training sets (`training_hash`).

Signing is offline (no timestamp authority, no remote manifests, no OCSP). c2pa rejects a bare self-signed
certificate, so on first use a local CA and a leaf certificate (ECDSA P-256, ES256; leaf with digitalSignature
key usage and the emailProtection extended key usage, which c2pa accepts) are made with `cryptography` and
kept in the user's config folder, `<config>/c2pa/`: `ca.pem`, `ca.key`, `signer.pem` (leaf + CA), `signer.key`.
The config folder is $FACEDOUBLE_CONFIG_DIR if set, else %APPDATA%\\facedouble on Windows,
~/Library/Application Support/facedouble on macOS, $XDG_CONFIG_HOME/facedouble (default ~/.config/facedouble)
elsewhere.

An organisation can sign with its own certificate instead (`--sign-cert FILE --sign-key FILE` on merge and
video build): `signing_identity(cert, key)` checks the pair before any work (both given, readable PEM, the key
belongs to the leaf, the leaf is current, and c2pa accepts the chain in a trial signature) and says in one
sentence what is wrong. `ImageSigner` signs encoded PNG/JPEG images in memory, as the merger writes them:
one identity and manifest per run, one c2pa signer per thread, no thumbnail in the manifest (c2pa's
thumbnail would cost ~45 ms a 720p frame; without it signing costs ~2 ms a JPEG and ~8 ms a PNG of CPU).

Reading: a manifest is "valid" when its signature and hashes check out ("Valid" or "Trusted" for c2pa),
"invalid" when anything was changed after signing, "absent" when there is none. The local CA, when present,
is given to the reader as a trust anchor, so files signed on this machine read as trusted; elsewhere they
read as valid but signed by an untrusted (self-issued) certificate, which is reported, not an error.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import hashlib
import io
import json
import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import InputError, ProvenanceError
from .tag import IPTC_COMPOSITE

CONFIG_ENV = "FACEDOUBLE_CONFIG_DIR"
TRAINING_LABEL = "org.facedouble.training"
LEAF_DAYS = 5 * 365
CA_DAYS = 20 * 365

MIME_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".mov": "video/quicktime",
    ".avi": "video/x-msvideo",
    ".webp": "image/webp",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
}


def config_dir() -> Path:
    """The user's facedouble config folder (not created)."""
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env).expanduser()
    if sys.platform.startswith("win"):
        base = os.environ.get("APPDATA")
        return (Path(base) if base else Path.home() / "AppData" / "Roaming") / "facedouble"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "facedouble"
    base = os.environ.get("XDG_CONFIG_HOME")
    return (Path(base).expanduser() if base else Path.home() / ".config") / "facedouble"


def credentials_dir() -> Path:
    return config_dir() / "c2pa"


# -- local CA + leaf ---------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Credentials:
    chain: Path      # leaf certificate then CA certificate, PEM
    key: Path        # leaf private key, PEM (PKCS#8)
    ca: Path | None  # CA certificate, PEM (trust anchor for reading)


def _name(common: str):
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "facedouble (local, self-issued)")])


def _make_ca():
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    now = datetime.datetime.now(datetime.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name("facedouble local CA")
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return key, cert


def _make_leaf(ca_key, ca_cert):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID

    now = datetime.datetime.now(datetime.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name("facedouble signer")).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=LEAF_DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return key, cert


def _pem_cert(cert) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM)


def _pem_key(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _leaf_usable(chain: Path) -> bool:
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificates(chain.read_bytes())[0]
    except (OSError, ValueError, IndexError):
        return False
    return cert.not_valid_after_utc - datetime.timedelta(days=1) > datetime.datetime.now(datetime.timezone.utc)


def ensure_credentials() -> Credentials:
    """The local signing credentials, made on first use (and the leaf renewed when it expires). The files
    are written into a temporary folder that is renamed into place, so two processes starting at once never
    mix a key with another's certificate."""
    folder = credentials_dir()
    chain, key, ca = folder / "signer.pem", folder / "signer.key", folder / "ca.pem"
    if chain.is_file() and key.is_file() and _leaf_usable(chain):
        return Credentials(chain, key, ca if ca.is_file() else None)
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        if folder.is_dir() and (folder / "ca.key").is_file() and ca.is_file():
            _renew_leaf(folder)
            return Credentials(chain, key, ca)
        tmp = Path(tempfile.mkdtemp(prefix=".c2pa-", dir=folder.parent))
        try:
            ca_key, ca_cert = _make_ca()
            leaf_key, leaf_cert = _make_leaf(ca_key, ca_cert)
            (tmp / "ca.pem").write_bytes(_pem_cert(ca_cert))
            _write_private(tmp / "ca.key", _pem_key(ca_key))
            (tmp / "signer.pem").write_bytes(_pem_cert(leaf_cert) + _pem_cert(ca_cert))
            _write_private(tmp / "signer.key", _pem_key(leaf_key))
            if folder.exists() and not (chain.is_file() and key.is_file()):
                # a broken earlier attempt: keep it aside rather than delete anything
                folder.rename(folder.with_name(f"c2pa.broken-{os.getpid()}"))
            try:
                os.rename(tmp, folder)
            except OSError:
                if not (chain.is_file() and key.is_file()):   # not another process that won the race
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    except OSError as e:
        raise ProvenanceError(f"Cannot create the signing certificate in {folder} ({e.strerror or e}); make "
                              f"that folder writable or set {CONFIG_ENV} to a writable folder.") from None
    return Credentials(chain, key, ca)


def _renew_leaf(folder: Path) -> None:
    """A new leaf from the existing CA (the old one expired). Key and chain are replaced one after the
    other; a process signing at that very moment may fail once. It happens once every few years."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    ca_cert = x509.load_pem_x509_certificate((folder / "ca.pem").read_bytes())
    ca_key = serialization.load_pem_private_key((folder / "ca.key").read_bytes(), password=None)
    leaf_key, leaf_cert = _make_leaf(ca_key, ca_cert)
    _write_private(folder / "signer.key.new", _pem_key(leaf_key))
    (folder / "signer.pem.new").write_bytes(_pem_cert(leaf_cert) + _pem_cert(ca_cert))
    os.replace(folder / "signer.key.new", folder / "signer.key")
    os.replace(folder / "signer.pem.new", folder / "signer.pem")


# -- c2pa plumbing -----------------------------------------------------------------------------------------

def _c2pa():
    try:
        import c2pa
    except ImportError as e:  # pragma: no cover - c2pa-python is a base requirement
        raise ProvenanceError(f"c2pa-python is not installed ({e}); run `pip install c2pa-python==0.38.1`.") from None
    return c2pa


def _context(trust_ca: Path | None, *, thumbnail: bool = True):
    c2pa = _c2pa()
    settings: dict[str, Any] = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}}
    if not thumbnail:
        settings["builder"] = {"thumbnail": {"enabled": False}}
    if trust_ca is not None and trust_ca.is_file():
        settings["trust"] = {"user_anchors": trust_ca.read_text()}
    return c2pa.Context.from_dict(settings)


def mime_type(path: str | Path) -> str | None:
    return MIME_TYPES.get(Path(path).suffix.lower())


def training_hash(*folders: str | Path) -> str:
    """SHA-256 (hex) of the sorted names and sizes of the files in the given folders (e.g. data_src/aligned
    and data_dst/aligned): a fingerprint of the training sets that reveals nothing of their content. Each line
    is `<folder index>/<file name>\\t<size>`."""
    lines = []
    for i, folder in enumerate(folders):
        folder = Path(folder)
        if not folder.is_dir():
            raise InputError(f"{folder} is not a folder; give the aligned faces folder of the training set.")
        for p in folder.iterdir():
            if p.is_file():
                lines.append(f"{i}/{p.name}\t{p.stat().st_size}")
    return hashlib.sha256("\n".join(sorted(lines)).encode("utf-8")).hexdigest()


def _manifest(title: str, run_id: str, training: str | None, has_parent: bool) -> dict[str, Any]:
    agent = {"name": "facedouble", "version": __version__}
    first: dict[str, Any]
    if has_parent:
        first = {"action": "c2pa.opened", "softwareAgent": agent, "parameters": {"ingredientIds": ["dst"]},
                 "description": "The video whose face is replaced (dst)."}
    else:
        first = {"action": "c2pa.created", "softwareAgent": agent, "digitalSourceType": IPTC_COMPOSITE}
    edited = {"action": "c2pa.edited", "softwareAgent": agent, "digitalSourceType": IPTC_COMPOSITE,
              "description": "A face was replaced with another person's face by a neural network "
                             "(facedouble face swap); AI-generated."}
    training_data: dict[str, Any] = {"run_id": str(run_id), "generator": "facedouble", "version": __version__}
    if training:
        training_data["sha256"] = training
        training_data["sha256_of"] = "sorted src/dst aligned face file names and sizes"
    return {
        "claim_generator_info": [agent],
        "title": title,
        "assertions": [
            {"label": "c2pa.actions.v2", "data": {"actions": [first, edited]}},
            {"label": TRAINING_LABEL, "data": training_data},
        ],
    }


# -- who signs ---------------------------------------------------------------------------------------------

_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
# a 1x1 PNG, signed once to check that c2pa takes a certificate chain before any work is done
_TRIAL_PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de0000000a49444154"
                           "081d63000200000400010d3ba4b90000000049454e44ae426082")


@dataclasses.dataclass(frozen=True)
class SigningIdentity:
    """A checked certificate chain (leaf first, PEM) and its private key (PEM), ready for c2pa."""

    chain_pem: bytes
    key_pem: bytes
    alg: str                # c2pa.C2paSigningAlg member name: ES256, ES384, ES512, PS256, ED25519
    subject: str            # the leaf's subject, e.g. "CN=Newsroom signer,O=Example News"
    organisation: str       # the leaf's organisation (O=), else its common name
    anchor: Path | None     # trust anchor for reading back (the local CA; None for an organisation's own)
    local: bool             # the local facedouble certificate

    def signer(self):
        c2pa = _c2pa()
        alg = getattr(c2pa.C2paSigningAlg, self.alg)
        return c2pa.Signer.from_info(c2pa.C2paSignerInfo(alg, self.chain_pem, self.key_pem, None))


def _name_part(name, oid) -> str:
    values = name.get_attributes_for_oid(oid)
    return str(values[0].value) if values else ""


def signing_identity(cert: str | Path | None = None, key: str | Path | None = None) -> SigningIdentity:
    """The identity to sign with: an organisation's certificate chain `cert` and private key `key` (PEM files;
    both or neither), or the local facedouble certificate when neither is given (made on first use). Checked
    before any work: ProvenanceError says in one sentence what is wrong with the pair."""
    if (cert is None) != (key is None):
        raise ProvenanceError("--sign-cert and --sign-key go together: give both (the certificate chain and its private "
                              "key), or neither to sign with the local facedouble certificate.")
    if cert is None:
        creds = ensure_credentials()
        return _checked_identity(str(creds.chain), str(creds.key), _stamp(creds.chain), _stamp(creds.key),
                                 str(creds.ca) if creds.ca else None)
    cert, key = Path(cert).expanduser(), Path(key).expanduser()
    return _checked_identity(str(cert), str(key), _stamp(cert, "--sign-cert"), _stamp(key, "--sign-key"), None)


def _stamp(path: Path, flag: str | None = None) -> tuple[int, int]:
    """(mtime_ns, size): a changed file is checked again."""
    try:
        st = path.stat()
    except OSError as e:
        what = f"{flag} {path}" if flag else f"The signing file {path}"
        raise ProvenanceError(f"{what} cannot be read ({e.strerror or e}); give the path of a PEM file.") from None
    return st.st_mtime_ns, st.st_size


@functools.lru_cache(maxsize=8)
def _checked_identity(cert: str, key: str, _cert_stamp, _key_stamp, anchor: str | None) -> SigningIdentity:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    from cryptography.x509.oid import NameOID

    local = anchor is not None
    cflag, kflag = ("the local certificate", "its key") if local else ("--sign-cert", "--sign-key")
    try:
        chain_pem, key_pem = Path(cert).read_bytes(), Path(key).read_bytes()
    except OSError as e:
        raise ProvenanceError(f"Cannot read {e.filename} ({e.strerror or e}); check the --sign-cert and --sign-key "
                              "paths.") from None
    try:
        certs = x509.load_pem_x509_certificates(chain_pem)
    except ValueError:
        certs = []
    if not certs:
        raise ProvenanceError(f"{cflag} {cert} holds no PEM certificate; give the signing certificate in PEM, its CA "
                              "certificates after it.")
    try:
        private = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        raise ProvenanceError(f"{kflag} {key} is password-protected; give the private key unencrypted (PEM), e.g. "
                              "`openssl pkey -in KEY -out plain.key`.") from None
    except (ValueError, serialization.UnsupportedAlgorithm):
        raise ProvenanceError(f"{kflag} {key} is not a PEM private key; give the private key of the certificate in "
                              f"{cert}.") from None
    leaf = certs[0]
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if (private.public_key().public_bytes(serialization.Encoding.DER, public)
            != leaf.public_key().public_bytes(serialization.Encoding.DER, public)):
        raise ProvenanceError(f"{kflag} {key} does not belong to the certificate in {cert}; give the private key of "
                              "that certificate (the first one in the file).")
    if isinstance(private, ec.EllipticCurvePrivateKey) and private.curve.name in _ALGORITHMS:
        alg = _ALGORITHMS[private.curve.name]
    elif isinstance(private, rsa.RSAPrivateKey):
        alg = "PS256"
    elif isinstance(private, ed25519.Ed25519PrivateKey):
        alg = "ED25519"
    else:
        raise ProvenanceError(f"{kflag} {key} is a {type(private).__name__.lstrip('_')} key, which C2PA cannot sign "
                              "with; use an ECDSA P-256/P-384/P-521, RSA or Ed25519 key.")
    now = datetime.datetime.now(datetime.timezone.utc)
    if not leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc:
        raise ProvenanceError(f"The certificate in {cert} is valid from {leaf.not_valid_before_utc:%Y-%m-%d} to "
                              f"{leaf.not_valid_after_utc:%Y-%m-%d}, not now; give a current certificate.")
    org = _name_part(leaf.subject, NameOID.ORGANIZATION_NAME) or _name_part(leaf.subject, NameOID.COMMON_NAME)
    identity = SigningIdentity(chain_pem, key_pem, alg, leaf.subject.rfc4514_string(), org,
                               Path(anchor) if anchor else None, local)
    c2pa = _c2pa()
    try:  # a trial signature: c2pa refuses e.g. a bare self-signed certificate or one without a signing use
        builder = c2pa.Builder(_manifest("trial.png", "00000000", None, False), context=_context(None, thumbnail=False))
        builder.sign(identity.signer(), "image/png", io.BytesIO(_TRIAL_PNG), io.BytesIO())
    except c2pa.C2paError as e:
        raise ProvenanceError(f"C2PA refuses the certificate in {cert} ({e}); give a leaf certificate issued by a CA "
                              "(not self-signed), with the digitalSignature key usage and an authority key "
                              "identifier, followed by its CA certificate in the same file.") from None
    return identity


class ImageSigner:
    """Signs encoded PNG/JPEG images in memory with one identity and one manifest (created + edited as
    AI-generated, run id, training hash), as the merger writes them. Safe to share between threads: each
    thread gets its own c2pa signer and context. The manifest carries no thumbnail (see the module doc)."""

    def __init__(self, identity: SigningIdentity, run_id: str, training_hash: str | None = None):
        self.identity, self.run_id, self.training_hash = identity, str(run_id), training_hash
        self._local = threading.local()

    def _parts(self):
        parts = getattr(self._local, "parts", None)
        if parts is None:
            parts = self._local.parts = (self.identity.signer(), _context(None, thumbnail=False))
        return parts

    def sign(self, data: bytes, suffix: str, title: str) -> bytes:
        """`data` (a complete PNG or JPEG file, by `suffix`) with a signed manifest embedded; `title`: the
        file's name."""
        c2pa = _c2pa()
        fmt = mime_type("x" + suffix) if suffix.startswith(".") else mime_type(suffix)
        if fmt not in ("image/png", "image/jpeg"):
            raise ProvenanceError(f"{title} cannot carry content credentials here; write merged images as PNG or JPEG.")
        signer, context = self._parts()
        out = io.BytesIO()
        try:
            builder = c2pa.Builder(_manifest(title, self.run_id, self.training_hash, False), context=context)
            builder.sign(signer, fmt, io.BytesIO(data), out)
        except c2pa.C2paError as e:
            raise ProvenanceError(f"Signing {title} with C2PA content credentials failed ({e}); check the signing "
                                  "certificate.") from None
        return out.getvalue()


def sign_file(path: str | Path, *, parent: Path | None, training_hash: str | None, run_id: str,
              cert: Path | None = None, key: Path | None = None, title: str | None = None) -> None:
    """Embed a signed C2PA manifest in `path` (PNG, JPEG, MP4, MOV, AVI), in place and atomically: the signed
    copy is written beside it and then renamed over it. `parent`: the dst video, added as parent ingredient.
    `cert`/`key`: a PEM chain (leaf first) and its private key (see `signing_identity`); the local
    credentials when not given.
    `title`: the name recorded in the manifest (default: the file name)."""
    c2pa = _c2pa()
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} does not exist; give the path of the result to sign.")
    fmt = mime_type(path)
    if fmt is None:
        raise ProvenanceError(f"{path.name} cannot carry content credentials; write the result as "
                              f"{', '.join(sorted(set(MIME_TYPES)))}.")
    identity = signing_identity(cert, key)
    if parent is not None and not Path(parent).is_file():
        raise InputError(f"The parent video {parent} does not exist; give the dst video the result was made from.")
    manifest = _manifest(title or path.name, run_id, training_hash, parent is not None)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.signing-", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        signer = identity.signer()
        builder = c2pa.Builder(manifest, context=_context(identity.anchor))
        if parent is not None:
            parent = Path(parent)
            with open(parent, "rb") as fh:
                builder.add_ingredient({"title": parent.name, "relationship": "parentOf", "label": "dst"},
                                       mime_type(parent) or "application/octet-stream", fh)
        with open(path, "rb") as src, open(tmp, "w+b") as dst:
            builder.sign(signer, fmt, src, dst)
            dst.flush()
            os.fsync(dst.fileno())
        shutil.copymode(path, tmp)
        os.replace(tmp, path)
    except c2pa.C2paError as e:
        raise ProvenanceError(f"Signing {path.name} with C2PA content credentials failed ({e}); check that the "
                              "file is complete and the certificate is valid.") from None
    except OSError as e:
        raise ProvenanceError(f"Cannot write the signed copy of {path} ({e.strerror or e}); free some disk "
                              "space or make the folder writable.") from None
    finally:
        tmp.unlink(missing_ok=True)


# -- reading -----------------------------------------------------------------------------------------------

@dataclasses.dataclass
class ManifestInfo:
    """state: "valid" | "invalid" | "absent"; claims: what the active manifest says; errors: the failed checks
    (c2pa codes with their explanation)."""

    state: str
    claims: dict[str, Any]
    errors: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state, "claims": self.claims, "errors": list(self.errors)}


def _claims(reader, state: str, failures: list[dict]) -> dict[str, Any]:
    manifest = reader.get_active_manifest() or {}
    actions: list[dict[str, Any]] = []
    training = None
    for assertion in manifest.get("assertions", []):
        label = assertion.get("label", "")
        if label.startswith("c2pa.actions"):
            for a in assertion.get("data", {}).get("actions", []):
                agent = a.get("softwareAgent")
                if isinstance(agent, dict):
                    agent = " ".join(str(agent.get(k, "")) for k in ("name", "version")).strip()
                actions.append({k: v for k, v in (("action", a.get("action")),
                                                   ("digitalSourceType", a.get("digitalSourceType")),
                                                   ("softwareAgent", agent),
                                                   ("description", a.get("description"))) if v})
        elif label == TRAINING_LABEL:
            training = assertion.get("data")
    generator = [" ".join(str(g.get(k, "")) for k in ("name", "version")).strip()
                 for g in manifest.get("claim_generator_info", []) if isinstance(g, dict)]
    sig = manifest.get("signature_info", {}) or {}
    untrusted = any(f.get("code") == "signingCredential.untrusted" for f in failures)
    return {
        "title": manifest.get("title"),
        "claim_generator": generator,
        "actions": actions,
        "ingredients": [{k: i.get(k) for k in ("title", "relationship", "format") if i.get(k)}
                        for i in manifest.get("ingredients", [])],
        "training": training,
        # c2pa's "issuer" is the organisation (O=) of the signing certificate's subject
        "signer": {k: sig.get(k) for k in ("issuer", "common_name", "alg", "time") if sig.get(k)},
        "trusted": state == "Trusted",
        "trust": ("trusted" if state == "Trusted" else
                  "signed by a certificate not on this machine's trust list (self-issued, or another "
                  "organisation's)" if untrusted else
                  "not checked"),
        "c2pa_state": state,
    }


def read_manifest(path: str | Path) -> ManifestInfo:
    """The C2PA manifest of a file: valid (signature and hashes check out), invalid (changed after signing,
    or damaged), or absent. Offline: nothing is fetched."""
    c2pa = _c2pa()
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} does not exist; give the path of an image or a video.")
    anchor = credentials_dir() / "ca.pem"
    fmt = mime_type(path)
    try:
        with open(path, "rb") as fh:
            reader = c2pa.Reader(fmt or path.suffix.lstrip(".").lower() or "application/octet-stream", fh,
                                 context=_context(anchor if anchor.is_file() else None))
            try:
                state = reader.get_validation_state() or ""
                results = reader.get_validation_results() or {}
                failures = list((results.get("activeManifest") or {}).get("failure", []))
                claims = _claims(reader, state, failures)
            finally:
                reader.close()
    except OSError as e:
        raise InputError(f"Cannot read {path} ({e.strerror or e}); check the path and its permissions.") from None
    except c2pa.C2paError as e:
        name = type(e).__name__
        if "ManifestNotFound" in name:
            return ManifestInfo("absent", {}, [])
        if "NotSupported" in name:
            return ManifestInfo("absent", {}, [f"C2PA cannot be embedded in this file type ({path.suffix})."])
        if fmt is None:
            return ManifestInfo("absent", {}, [f"not a format C2PA reads ({e})"])
        return ManifestInfo("invalid", {}, [f"the file or its manifest cannot be parsed ({e})"])
    errors = [f"{f.get('code')}: {f.get('explanation', '')}".rstrip(": ") for f in failures
              if f.get("code") != "signingCredential.untrusted"]
    if state == "Invalid":
        return ManifestInfo("invalid", claims, errors or ["c2pa reports the manifest invalid"])
    if state in ("Valid", "Trusted"):
        return ManifestInfo("valid", claims, errors)
    return ManifestInfo("invalid", claims, errors or [f"unknown validation state {state!r}"])


def manifest_json(path: str | Path) -> dict[str, Any]:  # pragma: no cover - debugging aid
    """The full manifest store of a file as c2pa reports it."""
    c2pa = _c2pa()
    with open(path, "rb") as fh:
        reader = c2pa.Reader(mime_type(path) or "application/octet-stream", fh)
        return json.loads(reader.json())
