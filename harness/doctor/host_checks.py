"""The host checks: pyscard and its libpcsclite, OpenSC, the card-face font, the PKI
directory."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from card_emulator.render import FONT_FAMILY, FONT_PACKAGE
from harness.doctor import probes
from harness.doctor.facts import Facts
from harness.doctor.model import Result, Status
from harness.doctor.model import quote as _q
from jpki.pki_store import ENVIRONMENT_VARIABLE as PKI_VARIABLE

__all__ = ["check_font", "check_opensc", "check_pki", "check_pyscard"]


def check_pyscard(facts: Facts) -> Result:
    check, title = "pyscard", "pyscard"
    probe = facts.pyscard
    if probe.error is not None:
        return Result(
            check,
            title,
            Status.PROBLEM,
            f"pyscard is not importable by {facts.env.python} ({probe.error}): serve cannot "
            "talk to pcscd",
            facts.pyscard_fix(),
        )
    name = f"pyscard {probe.version or '(version unknown)'}"
    if probe.libraries is None:
        return Result(
            check,
            title,
            Status.OK,
            f"{name} imports (which libpcsclite it loads: Linux-only check, skipped)",
            linux_only=True,
        )
    loaded = [os.path.realpath(lib) for lib in probe.libraries]
    system = probes.system_libpcsclite(facts.env.path, facts.env.timeout)
    if not loaded:
        return Result(
            check,
            title,
            Status.WARNING,
            f"{name} imports, but no libpcsclite was loaded into its process",
            "apt-get install -y libpcsclite1",
            linux_only=True,
        )
    if not system:
        return Result(
            check,
            title,
            Status.WARNING,
            f"{name} loads {loaded[0]}, but the system has no libpcsclite.so.1 (the "
            "client library that comes with pcscd)",
            "apt-get install -y libpcsclite1",
            linux_only=True,
        )
    same = [lib for lib in loaded if any(_same_file(lib, s) for s in system)]
    if not same:
        return Result(
            check,
            title,
            Status.WARNING,
            f"{name} loads {loaded[0]}, not the system's {system[0]} that comes with "
            "pcscd: another pcsc-lite's client library may not speak pcscd's protocol",
            library_fix(facts, loaded[0], system[0]),
            linux_only=True,
        )
    lib_version = probes.dpkg_version("libpcsclite1", facts.env.path, facts.env.timeout)
    pcscd_version = probes.dpkg_version("pcscd", facts.env.path, facts.env.timeout)
    if lib_version and pcscd_version and lib_version != pcscd_version:
        return Result(
            check,
            title,
            Status.WARNING,
            f"{name} loads {same[0]} from libpcsclite1 {lib_version}, but pcscd is "
            f"{pcscd_version}: client and daemon of different pcsc-lite versions",
            "apt-get install -y pcscd libpcsclite1",
            linux_only=True,
        )
    package = f" (libpcsclite1 {lib_version})" if lib_version else ""
    return Result(
        check,
        title,
        Status.OK,
        f"{name} loads {same[0]}, the system's libpcsclite{package}",
        linux_only=True,
    )


def library_fix(facts: Facts, loaded: str, system: str) -> str:
    here = os.path.dirname(loaded)
    entries = [e for e in facts.env.ld_library_path.split(":") if e]
    kept = [e for e in entries if os.path.realpath(e) != here]
    if len(kept) != len(entries):
        return f"export LD_LIBRARY_PATH={_q(':'.join(kept))}" if kept else "unset LD_LIBRARY_PATH"
    return f"export LD_PRELOAD={_q(system)}"


def check_opensc(facts: Facts) -> Result:
    check, title = "opensc", "OpenSC"
    tools = {name: probes.which(name, facts.env.path) for name in ("opensc-tool", "pkcs15-tool")}
    missing = [name for name, where in tools.items() if where is None]
    if missing:
        return Result(
            check,
            title,
            Status.WARNING,
            f"{' and '.join(missing)} not found on PATH (optional: reading served cards "
            "from the host side as a kiosk would, and the OpenSC tests)",
            "apt-get install -y opensc",
        )
    tool = tools["opensc-tool"]
    assert tool is not None
    version = probes.program_version([tool, "--info"], r"OpenSC (\d[\w.]*)", facts.env.timeout)
    found = ", ".join(str(where) for where in tools.values())
    return Result(
        check,
        title,
        Status.OK,
        f"{found}" + (f" (OpenSC {version})" if version else ""),
    )


def check_font(facts: Facts) -> Result:
    check, title = "font", "card-face font"
    try:
        face = facts.env.find_font()
    except RuntimeError:
        return Result(
            check,
            title,
            Status.PROBLEM,
            f"no {FONT_FAMILY} font: serve cannot draw the card face (name, address) of a "
            "persona without image files, the default demo persona included",
            f"apt-get install -y {FONT_PACKAGE}",
        )
    return Result(check, title, Status.OK, f"{FONT_FAMILY}: {face.path} (face {face.index})")


def check_pki(facts: Facts) -> Result:
    check, title = "pki-dir", "PKI directory"
    directory = facts.env.pki_dir
    probe = probes.probe_writable(directory)
    if probe.ok:
        if probe.exists:
            held = " (holds a test PKI)" if (directory / "pki.toml").is_file() else ""
            finding = f"{directory} is writable{held}"
        else:
            finding = f"{directory} does not exist yet; it can be made in {probe.target}"
        return Result(check, title, Status.OK, finding)
    target = probe.target
    other = f"export {PKI_VARIABLE}={_q(facts.other_pki_dir(directory, target))}"
    where = directory if probe.exists else f"{directory} (in {target})"
    cannot = "serve cannot record the certificates it issues"
    if probe.not_a_directory:
        reason, fix = f"{target} is not a directory", other
    else:
        error = probe.error
        assert error is not None
        if error.errno == errno.EROFS:
            mount = probes.mount_point(target)
            reason, fix = f"read-only file system (mounted at {mount})", other
        elif probes.immutable(target):
            reason, fix = f"{target} is immutable (chattr +i)", f"chattr -i {_q(target)}"
        elif error.errno in (errno.EACCES, errno.EPERM) and _owned(target):
            reason, fix = "no write permission", f"chmod u+w {_q(target)}"
        else:
            reason, fix = error.strerror or str(error), other
    return Result(
        check,
        title,
        Status.PROBLEM,
        f"PKI directory {where} is not writable: {reason}; {cannot}",
        fix,
    )


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _owned(path: Path) -> bool:
    try:
        return path.stat().st_uid == os.geteuid()
    except OSError:
        return False
