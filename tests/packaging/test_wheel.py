"""The wheel carries everything a command needs (issue 15): built from a copy of the source tree,
directly and through the sdist, installed (not editable) into a fresh virtualenv outside the
repository, and run from a directory that is not the repository.

The first run downloads the dependencies (pyscard is compiled against libpcsclite-dev, which the
test command installs); pip's cache makes later runs fast. ``MYNACARD_PKI`` points into a
temporary directory for every command run here.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from harness.plugin import pcsc_missing
from tests.conftest import ROOT
from tests.integration.test_serve import start_serve

pytestmark = pytest.mark.slow

PACKAGES = ("mynacard", "apdu", "jpki", "card_emulator", "readers", "harness")
DEMO_IN_WHEEL = "harness/data/personas/demo.toml"
BUILD_TIMEOUT = 600
INSTALL_TIMEOUT = 1200  # first run: downloads, and pyscard compiled from source
RUN_TIMEOUT = 300
# Variables of this test run that would let the installed package see the checkout (or another
# environment, or this run's pcscd) instead of what the wheel installed.
DROPPED_ENV = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "PCSCLITE_CSOCK_NAME")

# A PC/SC client of the served card, run by the virtualenv's python (its pyscard): the JPKI
# authentication certificate (EF 000A of the JPKI AP), read in 256-byte READ BINARY chunks.
READ_AUTH_CERTIFICATE = """
import sys
from smartcard.System import readers

connection = readers()[0].createConnection()
connection.connect()


def send(apdu):
    data, sw1, sw2 = connection.transmit(list(apdu))
    if (sw1, sw2) != (0x90, 0x00):
        sys.exit(f"{bytes(apdu).hex()}: SW {sw1:02X}{sw2:02X}")
    return bytes(data)


send(bytes.fromhex("00A4040C0AD392F000260100000001"))  # SELECT the JPKI AP
send(bytes.fromhex("00A4020C02000A"))  # SELECT EF 000A, the authentication certificate
head = send(bytes.fromhex("00B0000004"))  # SEQUENCE, long form with two length bytes
assert head[:2] == bytes.fromhex("3082"), head.hex()
size = 4 + int.from_bytes(head[2:4], "big")
der = b""
while len(der) < size:
    count = min(256, size - len(der))
    der += send(bytes([0x00, 0xB0, len(der) >> 8, len(der) & 0xFF, count % 256]))
print(der.hex())
"""


@dataclass(frozen=True)
class Dists:
    """What ``python -m build`` made: a wheel from the tree, an sdist, a wheel from the sdist."""

    source: Path  # the copy of the source tree the builds ran in
    wheel: Path
    sdist: Path
    wheel_from_sdist: Path


def _run(
    argv: list[str], *, timeout: int, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``argv`` run to completion; the test fails, with what it printed, unless it exits 0."""
    done = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        pytest.fail(
            f"{' '.join(map(str, argv))} exited {done.returncode}\n"
            f"stdout: {done.stdout[-4000:]}\nstderr: {done.stderr[-4000:]}"
        )
    return done


def _copy_source(target: Path) -> None:
    """The files a clone of this checkout would have (tracked, or new and not ignored), so the
    builds see neither stale ``build/`` output nor the checkout's egg-info, and write none."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=ROOT,
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"the source tree is not a git checkout ({exc}): cannot tell its files")
    for name in listed.decode("utf-8").split("\0"):
        source = ROOT / name
        if not name or not (source.is_symlink() or source.is_file()):
            continue  # listed but deleted in the work tree
        copy = target / name
        copy.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            copy.symlink_to(os.readlink(source))
        else:
            shutil.copy2(source, copy)


def _wheel_files(wheel: Path) -> dict[str, str]:
    """Each file of ``wheel`` with the SHA-256 of its content."""
    with zipfile.ZipFile(wheel) as archive:
        return {
            name: hashlib.sha256(archive.read(name)).hexdigest()
            for name in archive.namelist()
            if not name.endswith("/")
        }


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Dists:
    work = tmp_path_factory.mktemp("dists")
    source = work / "source"
    _copy_source(source)
    build = [sys.executable, "-m", "build", "--outdir"]
    _run([*build, str(work / "direct"), "--wheel", str(source)], timeout=BUILD_TIMEOUT)
    _run([*build, str(work / "via-sdist"), str(source)], timeout=BUILD_TIMEOUT)  # sdist → wheel
    (wheel,) = (work / "direct").glob("*.whl")
    (sdist,) = (work / "via-sdist").glob("*.tar.gz")
    (wheel_from_sdist,) = (work / "via-sdist").glob("*.whl")
    return Dists(source, wheel, sdist, wheel_from_sdist)


@dataclass(frozen=True)
class Installed:
    """The wheel installed into a fresh virtualenv; commands run from an unrelated directory."""

    venv: Path
    cwd: Path
    env: dict[str, str]
    version: str

    def bin(self, name: str) -> str:
        return str(self.venv / "bin" / name)

    def run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return _run(list(argv), timeout=RUN_TIMEOUT, cwd=self.cwd, env=self.env)

    def python(self, code: str) -> str:
        return self.run(self.bin("python"), "-c", code).stdout.strip()


@pytest.fixture(scope="module")
def installed(dists: Dists, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    work = tmp_path_factory.mktemp("installed")
    assert not work.resolve().is_relative_to(ROOT.resolve())
    venv, cwd, pki = work / "venv", work / "cwd", work / "pki"
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV}
    env |= {"MYNACARD_PKI": str(pki), "PYTHONNOUSERSITE": "1", "PYTHONUNBUFFERED": "1"}
    _run([sys.executable, "-m", "venv", str(venv)], timeout=RUN_TIMEOUT, cwd=cwd, env=env)
    python = str(venv / "bin" / "python")
    _run(
        [python, "-m", "pip", "install", "--no-input", str(dists.wheel)],
        timeout=INSTALL_TIMEOUT,
        cwd=cwd,
        env=env,
    )
    version = dists.wheel.name.split("-")[1]
    return Installed(venv, cwd, env, version)


@pytest.fixture(scope="module")
def packaged_demo(installed: Installed) -> Path:
    """The demo persona as the installed package carries it (importlib.resources)."""
    path = Path(
        installed.python(
            "from importlib import resources; "
            "print(resources.files('harness').joinpath('data', 'personas', 'demo.toml'))"
        )
    )
    assert path.is_relative_to(installed.venv), path
    assert path.is_file(), f"{path}: the wheel did not install the demo persona"
    return path


def test_the_sdist_builds_the_wheel_the_tree_builds(dists: Dists) -> None:
    assert dists.wheel.name == dists.wheel_from_sdist.name
    assert _wheel_files(dists.wheel_from_sdist) == _wheel_files(dists.wheel)


def test_the_wheel_carries_every_file_of_the_packages(dists: Dists) -> None:
    """Data files (TOML, images, …) included: a file a package holds is one it reads."""
    in_source = {
        path.relative_to(dists.source).as_posix()
        for package in PACKAGES
        for path in (dists.source / package).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    in_wheel = {name for name in _wheel_files(dists.wheel) if ".dist-info/" not in name}
    assert DEMO_IN_WHEEL in in_wheel
    assert in_wheel == in_source


def test_the_installed_package_is_the_wheel(installed: Installed) -> None:
    """The virtualenv imports the wheel's files, never this checkout's."""
    version, where = installed.python(
        "import harness, mynacard; print(mynacard.__version__); print(harness.__file__)"
    ).splitlines()
    assert version == installed.version
    assert Path(where).is_relative_to(installed.venv)


def test_python_m_mynacard_runs_the_command(installed: Installed) -> None:
    reported = installed.run(installed.bin("mynacard"), "--version")
    assert reported.stdout.strip() == f"mynacard {installed.version}"
    script = installed.run(installed.bin("mynacard"), "--help")
    module = installed.run(installed.bin("python"), "-m", "mynacard", "--help")
    assert module.stdout.startswith("usage: mynacard ")
    assert module.stdout == script.stdout


def test_the_demo_runs_in_process(installed: Installed) -> None:
    done = installed.run(installed.bin("mynacard"), "demo", "--in-process")
    assert "Demo card for 番号\u3000花子 (persona 'demo'), in-process" in done.stdout
    assert "VERIFY ok" in done.stdout
    assert "Traceback" not in done.stderr


def test_persona_check_reads_the_packaged_demo(installed: Installed, packaged_demo: Path) -> None:
    done = installed.run(installed.bin("mynacard"), "persona-check", str(packaged_demo))
    assert done.stdout.startswith(f"{packaged_demo}: ok — 番号\u3000花子")


@pytest.fixture
def serve_socket(installed: Installed, packaged_demo: Path) -> Iterator[str]:
    """The installed ``mynacard serve`` with the packaged demo in one reader of its own pcscd;
    stopped (SIGTERM, by its PID) afterwards. Yields the pcscd socket its clients need."""
    reason = pcsc_missing()
    if reason is not None:
        pytest.skip(f"PC/SC test skipped: {reason}")
    serve, text, socket_path, _ = start_serve(
        "--persona",
        str(packaged_demo),
        "--readers",
        "1",
        cwd=installed.cwd,
        command=[installed.bin("mynacard")],
        env=installed.env,
    )
    try:
        assert "← demo: 番号\u3000花子, JPKIAPICCTOKEN2" in text, text
        yield socket_path
    finally:
        serve.send_signal(signal.SIGTERM)
        rest, _ = serve.communicate(timeout=30)
    assert serve.returncode == 0, rest


@pytest.mark.pcsc
def test_serve_gives_the_authentication_certificate_over_pcsc(
    installed: Installed, serve_socket: str
) -> None:
    read = _run(
        [installed.bin("python"), "-c", READ_AUTH_CERTIFICATE],
        timeout=RUN_TIMEOUT,
        cwd=installed.cwd,
        env={**installed.env, "PCSCLITE_CSOCK_NAME": serve_socket},
    )
    certificate = x509.load_der_x509_certificate(bytes.fromhex(read.stdout.strip()))
    issuer = certificate.issuer.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)
    assert [attribute.value for attribute in issuer] == ["JPKI-TEST"]
    assert "JPKI for user authentication" in certificate.issuer.rfc4514_string()
    assert isinstance(certificate.public_key(), rsa.RSAPublicKey)
