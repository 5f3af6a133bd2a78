"""The in-memory PKI: a directory store's twin that writes no file, anywhere.

Writes are watched two ways while an in-memory store is made and used: ``$MYNACARD_PKI``,
``HOME``, ``TMPDIR`` and the working directory point at empty directories that must stay empty,
and an audit hook (:func:`sys.addaudithook`, idle outside :func:`_no_writes`) records every
file opened for writing, every directory made, file renamed or removed, and every SQLite
database opened on something other than ``:memory:``.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

from jpki.clock import FrozenClock
from jpki.declaration import parse_declaration
from jpki.holder import HolderIdentity, Sex
from jpki.keys import generate_rsa_key
from jpki.names import Municipality, NameStyle, Tree
from jpki.pki_material import PkiMaterial
from jpki.pki_store import IssuedCertificate, PkiError, PkiStore
from jpki.revocation import CertificateState, RevocationReason
from jpki.validation import Outcome, validate

ONE_GENERATION = """
[pki]
base_url = "http://127.0.0.1:9998/pki"
styles = ["test"]

[auth]
[[auth.generations]]
generation = 1
not_before = 2020-01-01
not_after = 2040-01-01

[sign]
[[sign.generations]]
generation = 1
not_before = 2020-01-01
not_after = 2040-01-01
"""
ONE_GENERATION_DECLARATION = parse_declaration(ONE_GENERATION, "one-generation.toml")
START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
LATER = START + dt.timedelta(days=30)
CHIYODA = Municipality("Tokyo-to", "Chiyoda-ku", "13101")
HOLDER = HolderIdentity("番号　花子", Sex.FEMALE, dt.date(1980, 2, 17), "東京都千代田区")
USER_KEY = generate_rsa_key()  # one user key for every certificate here: the store does not care

# --- watching for writes --------------------------------------------------------------------------

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_CHANGING_EVENTS = frozenset(
    {"os.mkdir", "os.rename", "os.remove", "os.rmdir", "os.link", "os.symlink", "os.truncate"}
    | {"os.chmod", "os.chown", "os.utime", "shutil.copyfile", "shutil.move", "tempfile.mkstemp"}
    | {"tempfile.mkdtemp"}
)
_seen: list[str] | None = None
_seen_lock = threading.Lock()


def _audit(event: str, args: tuple[object, ...]) -> None:
    if _seen is None:  # idle: one comparison per event for the rest of the session
        return
    if event == "open":
        path, _mode, flags = args
        if isinstance(path, int) or not isinstance(flags, int) or not flags & _WRITE_FLAGS:
            return
        what = f"open for writing {path}"
    elif event == "sqlite3.connect":
        if args[0] == ":memory:":
            return
        what = f"sqlite3.connect {args[0]}"
    elif event in _CHANGING_EVENTS:
        what = f"{event} {args}"
    else:
        return
    with _seen_lock:
        if _seen is not None:
            _seen.append(what)


sys.addaudithook(_audit)


def _files_under(directory: Path) -> list[Path]:
    return sorted(directory.rglob("*"))


@contextmanager
def _no_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run the block with every default location empty and watched; fail if anything is written."""
    global _seen  # noqa: PLW0603 - the audit hook reads it
    watched = tmp_path / "watched"
    places = {name: watched / name for name in ("pki", "home", "tmp", "cwd")}
    for place in places.values():
        place.mkdir(parents=True)
    monkeypatch.setenv("MYNACARD_PKI", str(places["pki"]))
    monkeypatch.setenv("HOME", str(places["home"]))
    monkeypatch.setenv("TMPDIR", str(places["tmp"]))
    monkeypatch.setattr(tempfile, "tempdir", str(places["tmp"]))
    monkeypatch.chdir(places["cwd"])
    sys.dont_write_bytecode, saved = True, sys.dont_write_bytecode  # a late import is no write
    with _seen_lock:
        _seen = []
    try:
        yield
    finally:
        with _seen_lock:
            seen, _seen = _seen, None
        sys.dont_write_bytecode = saved
    assert seen == []
    for name, place in places.items():
        assert _files_under(place) == [], f"{name} is not empty"
    assert sorted(path.name for path in watched.iterdir()) == sorted(places)


@pytest.mark.parametrize("where", ["cwd", "home", "outside"])
def test_the_write_watch_sees_writes(
    where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outside = tmp_path / "outside"  # only the audit hook sees a write here
    outside.mkdir()
    with pytest.raises(AssertionError), _no_writes(tmp_path, monkeypatch):
        directory = {"cwd": Path(), "home": Path.home(), "outside": outside}[where]
        (directory / "written").write_bytes(b"")


# --- the store ------------------------------------------------------------------------------------


def _issue(
    store: PkiStore, persona: str, tree: Tree = Tree.AUTH, serial: int | None = None
) -> IssuedCertificate:
    return store.issue_user_certificate(
        tree,
        NameStyle.TEST,
        USER_KEY.public_key(),
        persona=persona,
        not_before=START,
        not_after=START + dt.timedelta(days=365),
        holder=HOLDER if tree is Tree.SIGN else None,
        municipality=CHIYODA,
        serial_number=serial,
        clock=FrozenClock(START),
    )


def _ocsp_response(store: PkiStore, issued: IssuedCertificate, at: dt.datetime) -> bytes:
    request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(issued.certificate, issued.authority.certificate, hashes.SHA1())
        .build()
    )
    return store.ocsp_response(request.public_bytes(Encoding.DER), at=at)


def _verdicts(store: PkiStore, issued: IssuedCertificate, at: dt.datetime) -> set[Outcome]:
    """What a relying party concludes by CRL and by OCSP, from the store's own answers."""
    roots = store.trust_roots()
    crl = store.crl(issued.record.tree, NameStyle.TEST, issued.authority.generation, at=at)
    by_crl = validate(
        issued.certificate,
        trust_roots=roots,
        moment=at,
        method="crl",
        crls=[crl.public_bytes(Encoding.DER)],
    )
    by_ocsp = validate(
        issued.certificate,
        trust_roots=roots,
        moment=at,
        method="ocsp",
        ocsp_responses=[_ocsp_response(store, issued, at)],
    )
    return {by_crl.outcome, by_ocsp.outcome}


def _exercise(store: PkiStore) -> None:
    """Issue, validate, revoke, hold, release, publish and sign: everything a test does."""
    auth = _issue(store, "alice")
    sign = _issue(store, "alice", Tree.SIGN)
    assert _verdicts(store, auth, LATER) == {Outcome.VALID}
    assert _verdicts(store, sign, LATER) == {Outcome.VALID}
    store.revoke("alice", [Tree.SIGN], RevocationReason.KEY_COMPROMISE, at=LATER)
    store.hold("alice", [Tree.AUTH], at=LATER)
    after = LATER + dt.timedelta(days=1)
    assert _verdicts(store, sign, after) == {Outcome.REVOKED}
    assert _verdicts(store, auth, after) == {Outcome.HOLD}
    store.release("alice", [Tree.AUTH], at=after)
    assert _verdicts(store, auth, after + dt.timedelta(days=1)) == {Outcome.VALID}
    for application in ("text", "kenmen", "mf"):
        signer = store.cv_signer(application)
        signer.certificate.verify(store.cv_root_public_key(application))
        signature = signer.sign(b"data")
        signer.certificate.public_key.verify(
            signature, b"data", padding.PKCS1v15(), hashes.SHA256()
        )
    store.arl(Tree.AUTH, NameStyle.TEST, 1, at=after)


def test_an_in_memory_store_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with _no_writes(tmp_path, monkeypatch):
        _exercise(PkiStore.in_memory(ONE_GENERATION_DECLARATION))
        default = PkiStore.in_memory()  # the package's declaration: both styles, 4 generations
        issued = default.issue_user_certificate(
            Tree.AUTH,
            NameStyle.PRODUCTION,
            USER_KEY.public_key(),
            persona="bob",
            not_before=START,
            not_after=START + dt.timedelta(days=365),
            holder=None,
            municipality=CHIYODA,
        )
        assert issued.authority.generation == 3
        assert default.certificates(persona="bob")[0].serial == issued.certificate.serial_number


@pytest.fixture(scope="module")
def memory() -> PkiStore:
    return PkiStore.in_memory(ONE_GENERATION_DECLARATION)


def test_the_store_has_a_location_but_no_directory(memory: PkiStore) -> None:
    assert memory.is_in_memory and memory.location.startswith("memory:")
    assert memory.location != PkiStore.in_memory(ONE_GENERATION_DECLARATION).location
    with pytest.raises(PkiError, match="has no directory"):
        _ = memory.directory
    assert memory.declaration == ONE_GENERATION_DECLARATION
    assert memory.material.vault.read("pki.toml").decode() == memory.declaration.to_toml()


def test_material_is_made_on_first_use_only() -> None:
    store = PkiStore.in_memory()  # 2 styles x 2 trees x 4 generations declared
    assert store.ocsp_issuers() == []  # nothing made, so nothing to answer for
    issued = _issue(store, "lazy")
    made = [
        (style, tree, generation)
        for style in NameStyle
        for tree in Tree
        for generation in range(1, 5)
        if store.material.has_authority(tree, style, generation)
    ]
    assert made == [(NameStyle.TEST, Tree.AUTH, issued.authority.generation)]
    assert [issuer.authority for issuer in store.ocsp_issuers()] == [issued.authority]
    # roots: every generation, the four RSA ones and the next-generation P-384 one
    assert len(store.trust_roots(Tree.AUTH, NameStyle.TEST)) == 5
    assert not store.material.has_authority(Tree.SIGN, NameStyle.TEST, 1)


def test_ocsp_and_crl_answers(memory: PkiStore) -> None:
    good = _issue(memory, "ocsp-good")
    gone = _issue(memory, "ocsp-gone")
    memory.revoke("ocsp-gone", [Tree.AUTH], RevocationReason.AFFILIATION_CHANGED, at=LATER)
    after = LATER + dt.timedelta(hours=1)
    answer = ocsp.load_der_ocsp_response(_ocsp_response(memory, good, after))
    assert answer.certificate_status is ocsp.OCSPCertStatus.GOOD
    assert answer.certificates == [memory.responder(Tree.AUTH, NameStyle.TEST, 1).certificate]
    answer = ocsp.load_der_ocsp_response(_ocsp_response(memory, gone, after))
    assert answer.certificate_status is ocsp.OCSPCertStatus.REVOKED
    crl = memory.crl(Tree.AUTH, NameStyle.TEST, 1, at=after)
    assert crl.is_signature_valid(memory.authority(Tree.AUTH, NameStyle.TEST, 1).key.public_key())
    assert [entry.serial_number for entry in crl] == [gone.certificate.serial_number]
    record = memory.certificates(persona="ocsp-gone")[0]
    assert record.status(after).state is CertificateState.REVOKED
    with pytest.raises(PkiError, match="already recorded"):
        _issue(memory, "twice", serial=good.certificate.serial_number)


def test_stores_are_independent(memory: PkiStore) -> None:
    other = PkiStore.in_memory(ONE_GENERATION_DECLARATION)
    _issue(memory, "only-here")
    assert other.certificates(persona="only-here") == []
    mine = memory.authority(Tree.AUTH, NameStyle.TEST, 1).certificate
    theirs = other.authority(Tree.AUTH, NameStyle.TEST, 1).certificate
    assert mine.public_key() != theirs.public_key()


def test_threads_share_one_store() -> None:
    store = PkiStore.in_memory(ONE_GENERATION_DECLARATION)  # nothing made yet: threads race

    def work(index: int) -> IssuedCertificate:
        issued = _issue(store, f"thread-{index % 4}", Tree.AUTH if index % 2 else Tree.SIGN)
        store.crl(issued.record.tree, NameStyle.TEST, 1, at=LATER)
        _ocsp_response(store, issued, LATER)
        return issued

    with ThreadPoolExecutor(max_workers=8) as pool:
        issued = list(pool.map(work, range(32)))
    assert len({each.certificate.serial_number for each in issued}) == 32
    assert len(store.certificates()) == 32
    assert len(store.trust_roots()) == 2
    for each in issued:  # each CA made once, however many threads asked for it at once
        authority = store.authority(each.record.tree, NameStyle.TEST, 1)
        each.certificate.verify_directly_issued_by(authority.certificate)


def test_memory_holds_what_a_directory_holds(tmp_path: Path) -> None:
    on_disk = PkiStore.open(tmp_path / "pki", declaration=ONE_GENERATION_DECLARATION)
    files = {
        path.relative_to(on_disk.directory).as_posix()
        for path in _files_under(on_disk.directory)
        if path.is_file() and not path.name.startswith((".lock", "certificates.sqlite"))
    }
    material = PkiMaterial.in_memory(ONE_GENERATION_DECLARATION)
    material.create_missing()
    assert files == set(material.names()) | {"pki.toml"}
    assert all(material.vault.exists(name) for name in files)
    assert isinstance(material.authority(Tree.AUTH, NameStyle.TEST, 1).key, rsa.RSAPrivateKey)
