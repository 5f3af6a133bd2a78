"""``mynacard doctor``: the real command on this machine (healthy, and with a problem simulated
through its options and environment), and each check over a simulated environment.

Fix commands are not only compared: where they touch nothing but the test's own files they are
run, and the check is asked again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
import random
import shutil
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from card_emulator.render import FontFace, find_cjk_font
from harness.doctor import (
    Environment,
    Status,
    exit_status,
    host_checks,
    pcsc_checks,
    probes,
    run_checks,
)
from harness.doctor.facts import Facts
from harness.doctor.host_checks import check_font, check_opensc, check_pki, check_pyscard
from harness.doctor.model import Result
from harness.doctor.probes import port_holders, system_libpcsclite
from readers.card_side.pcscd import PrivatePcscd
from readers.card_side.reader_conf import (
    PcscdNotInstalledError,
    declared_readers,
    find_pcscd,
    find_vpcd_driver,
)
from readers.card_side.sockets import pick_ports
from tests.conftest import ROOT

CHECKS = [
    "pcscd",
    "vpcd-driver",
    "vpcd-config",
    "running-pcscd",
    "vpcd-ports",
    "pyscard",
    "opensc",
    "font",
    "pki-dir",
]
IS_ROOT = os.geteuid() == 0


# -- the real command ----------------------------------------------------------------------


def doctor(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``mynacard doctor ARGS`` as a user runs it, in its own process."""
    base = {k: v for k, v in os.environ.items() if k != "PCSCLITE_CSOCK_NAME"}
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", "doctor", *args],
        env={**base, "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def report(done: subprocess.CompletedProcess[str]) -> dict[str, dict[str, Any]]:
    """The checks of a ``--json`` run, by id."""
    data = json.loads(done.stdout)
    return {check["check"]: check for check in data["checks"]}


def line_of(text: str, title: str) -> tuple[str, str | None]:
    """The report line of the check titled ``title``, and its ``fix:`` line if any."""
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if line[2:].split("  ")[0].strip() in ("ok", "warning", "PROBLEM") and (
            line[11:].startswith(title + " ")
        ):
            following = lines[index + 1].strip() if index + 1 < len(lines) else ""
            return line, following[5:] if following.startswith("fix: ") else None
    raise AssertionError(f"no {title!r} line in:\n{text}")


def missing_here() -> list[str]:
    """What `mynacard serve` needs that this machine lacks (the test command installs it)."""
    missing: list[str] = []
    try:
        find_pcscd()
    except PcscdNotInstalledError:
        missing.append("pcscd (apt-get install -y pcscd)")
    try:
        find_vpcd_driver()
    except PcscdNotInstalledError:
        missing.append("the vpcd driver (apt-get install -y vsmartcard-vpcd)")
    if not declared_readers():
        missing.append("/etc/reader.conf.d/vpcd (vsmartcard-vpcd)")
    try:
        find_cjk_font()
    except RuntimeError:
        missing.append("Noto Sans CJK JP (apt-get install -y fonts-noto-cjk)")
    return missing


def test_healthy_machine_exits_0() -> None:
    missing = missing_here()
    if missing:
        message = "this machine lacks " + ", ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(message + " (scripts/dev.sh test installs it)")
        pytest.skip(message)
    done = doctor()
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.rstrip().endswith("`mynacard serve` should work.")
    assert "PROBLEM" not in done.stdout
    for title in ("pcscd", "vpcd driver", "vpcd config", "pyscard", "card-face font"):
        assert line_of(done.stdout, title)[0].startswith("  ok "), done.stdout
    assert "[Linux-only]" in line_of(done.stdout, "vpcd driver")[0]

    as_json = doctor("--json")
    assert as_json.returncode == 0, as_json.stdout + as_json.stderr
    data = json.loads(as_json.stdout)
    assert data["ok"] is True and data["exit_status"] == 0 and data["problems"] == 0
    checks = report(as_json)
    assert list(checks) == CHECKS
    assert all(c["status"] in ("ok", "warning") for c in checks.values())
    assert all(c["fix"] for c in checks.values() if c["status"] == "warning")
    assert checks["pki-dir"]["finding"].startswith(os.environ["MYNACARD_PKI"])
    assert checks["vpcd-driver"]["linux_only"] is True
    if shutil.which("opensc-tool") and shutil.which("pkcs15-tool"):
        assert checks["opensc"]["status"] == "ok"


def test_missing_vpcd_configuration(tmp_path: Path) -> None:
    empty = tmp_path / "reader.conf.d"
    empty.mkdir()
    done = doctor("--reader-conf-dir", str(empty))
    assert done.returncode == 1, done.stdout + done.stderr
    line, fix = line_of(done.stdout, "vpcd config")
    assert line.startswith("  PROBLEM ")
    assert f"no vpcd reader configuration: {empty} has no vpcd entry" in line
    try:
        driver = find_vpcd_driver()
    except PcscdNotInstalledError:
        driver = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so"
    assert fix == (
        f'mkdir -p {empty} && printf \'FRIENDLYNAME "Virtual PCD"\\nDEVICENAME   '
        f"/dev/null:35963\\nLIBPATH      %s\\nCHANNELID    35963\\n' {driver} > {empty}/vpcd"
    )
    assert done.stdout.rstrip().endswith("`mynacard serve` would fail; run the fixes above.")

    subprocess.run(["bash", "-c", fix], check=True)  # the fix, in the test's own directory
    again = report(doctor("--json", "--reader-conf-dir", str(empty)))
    assert again["vpcd-config"]["status"] == "ok", again["vpcd-config"]
    assert "'Virtual PCD': /dev/null:35963" in again["vpcd-config"]["details"][0]


def test_pcscd_absent(tmp_path: Path) -> None:
    hidden = tmp_path / "no-sbin"
    hidden.mkdir()
    path = os.pathsep.join(
        d
        for d in os.environ["PATH"].split(os.pathsep)
        if not os.path.exists(os.path.join(d, "pcscd"))
    )
    done = doctor("--sbin-dir", str(hidden), env={"PATH": path})
    assert done.returncode == 1, done.stdout + done.stderr
    line, fix = line_of(done.stdout, "pcscd")
    assert line.startswith("  PROBLEM ")
    assert f"pcscd not found (looked in PATH and {hidden})" in line
    assert fix == "apt-get install -y pcscd"


@contextlib.contextmanager
def read_only(directory: Path, how: str) -> Iterator[None]:
    """``directory`` refusing new files: mode 0500, plus (as root, whom modes do not stop) an
    immutable attribute or a read-only bind mount over it. Undone afterwards."""
    directory.chmod(0o500)
    undo: list[list[str]] = []
    try:
        if how == "chattr":
            if subprocess.run(["chattr", "+i", str(directory)], check=False).returncode != 0:
                pytest.skip("chattr +i is not supported here")
            undo.append(["chattr", "-i", str(directory)])
        elif how == "ro-bind":
            if subprocess.run(
                ["mount", "--bind", str(directory), str(directory)], check=False
            ).returncode:
                pytest.skip("mount --bind is not allowed here")
            undo.append(["umount", str(directory)])
            subprocess.run(["mount", "-o", "remount,ro,bind", str(directory)], check=True)
        yield
    finally:
        for command in reversed(undo):
            subprocess.run(command, check=False)
        directory.chmod(0o700)


@pytest.mark.parametrize("how", ["chmod", "chattr", "ro-bind"])
def test_pki_directory_read_only(tmp_path: Path, how: str) -> None:
    if how == "chmod" and IS_ROOT:
        pytest.skip("root ignores permission bits (the chattr and ro-bind cases run instead)")
    if how != "chmod" and not IS_ROOT:
        pytest.skip(f"{how} needs root")
    pki = tmp_path / "pki"
    pki.mkdir()
    home = tmp_path / "home"
    env = {"MYNACARD_PKI": str(pki), "HOME": str(home)}
    with read_only(pki, how):
        done = doctor(env=env)
        assert done.returncode == 1, done.stdout + done.stderr
        line, fix = line_of(done.stdout, "PKI directory")
        assert line.startswith("  PROBLEM ")
        assert f"PKI directory {pki} is not writable: " in line
        assert "serve cannot record the certificates it issues" in line
        if how == "chmod":
            assert "no write permission" in line
            assert fix == f"chmod u+w {pki}"
        elif how == "chattr":
            assert f"{pki} is immutable (chattr +i)" in line
            assert fix == f"chattr -i {pki}"
        else:
            assert f"read-only file system (mounted at {pki})" in line
            assert fix == f"export MYNACARD_PKI={home}/.local/share/mynacard/pki"
        assert list(pki.iterdir()) == []  # the probe left nothing behind

        if how != "ro-bind":
            subprocess.run(["bash", "-c", fix], check=True)
            fixed = env
        else:
            fixed = {**env, "MYNACARD_PKI": fix.partition("=")[2]}
        again = report(doctor("--json", env=fixed))
        assert again["pki-dir"]["status"] == "ok", again["pki-dir"]
    assert not home.exists()  # suggesting a directory does not make it


@pytest.mark.pcsc
def test_running_pcscd_with_vpcd_readers(tmp_path: Path) -> None:
    """A pcscd of the test's own (private socket, not network-isolated so its vpcd ports are
    in this namespace): the doctor lists its readers and sees their ports in use by it."""
    if missing_here()[:2]:
        pytest.skip("needs pcscd and the vpcd driver")
    with PrivatePcscd(
        2, socket_path=str(tmp_path / "pcscd.comm"), set_environ=False, isolate_network=False
    ) as pcsc:
        done = doctor("--json", "--socket", pcsc.socket_path, "--reader-conf-dir", pcsc.config_dir)
        checks = report(done)
        running = checks["running-pcscd"]
        assert running["status"] == "ok", running
        assert f"on {pcsc.socket_path} with 2 vpcd readers, 2 empty" in running["finding"]
        assert running["details"] == [f"{r.name}: empty, vpcd port {r.port}" for r in pcsc.readers]
        ports = checks["vpcd-ports"]
        assert ports["status"] == "ok", ports
        assert "2 ports in use by the running pcscd's vpcd" in ports["finding"]

        # looked at with another reader.conf.d, the readers are still recognised as mynacard's
        # (a running `mynacard serve`), not taken for a pcscd that needs a restart
        other = report(doctor("--json", "--socket", pcsc.socket_path))["running-pcscd"]
        assert other["status"] == "ok", other
        assert (
            "is mynacard's own" in other["finding"] and "2 readers, 0 holding" in other["finding"]
        )


# -- each check over a simulated environment -----------------------------------------------


def font() -> FontFace:
    return FontFace(Path("/fonts/NotoSansCJK-Regular.ttc"), 0)


@pytest.fixture
def env(tmp_path: Path) -> Environment:
    """This machine, except for a PKI directory, home and font of the test's own."""
    return Environment.of_this_machine(
        pki_dir=tmp_path / "pki", home=tmp_path / "home", find_font=font
    )


def executable(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def run_fix(result: Result) -> None:
    assert result.fix is not None, result
    subprocess.run(["bash", "-c", result.fix], check=True)


def test_pcscd_found_through_the_sbin_fallback(env: Environment, tmp_path: Path) -> None:
    sbin = tmp_path / "sbin"
    fake = executable(sbin / "pcscd", "#!/bin/sh\necho 'pcsc-lite version 1.9.9.'\n")
    result = pcsc_checks.check_pcscd(
        Facts(dataclasses.replace(env, path=str(tmp_path), sbin_dirs=(str(sbin),)))
    )
    assert result.status is Status.OK
    assert result.finding == f"{fake}, pcsc-lite 1.9.9"


def test_pcscd_that_does_not_run(env: Environment, tmp_path: Path) -> None:
    executable(tmp_path / "bin" / "pcscd", "#!/bin/sh\nexit 127\n")
    result = pcsc_checks.check_pcscd(
        Facts(dataclasses.replace(env, path=str(tmp_path / "bin"), sbin_dirs=()))
    )
    assert result.status is Status.PROBLEM
    assert "does not run" in result.finding
    assert result.fix == "apt-get install --reinstall -y pcscd"


def test_vpcd_driver(env: Environment, tmp_path: Path) -> None:
    drivers = tmp_path / "drivers"
    drivers.mkdir()
    missing = pcsc_checks.check_driver(Facts(dataclasses.replace(env, driver_dirs=(str(drivers),))))
    assert missing.status is Status.PROBLEM and missing.linux_only
    assert f"not found under {drivers}" in missing.finding
    assert missing.fix == "apt-get install -y vsmartcard-vpcd"
    (drivers / "libifdvpcd.so").write_bytes(b"")
    found = pcsc_checks.check_driver(Facts(dataclasses.replace(env, driver_dirs=(str(drivers),))))
    assert found.status is Status.OK and found.finding == str(drivers / "libifdvpcd.so")


def test_vpcd_checks_are_linux_only(env: Environment) -> None:
    elsewhere = dataclasses.replace(env, platform="darwin")
    results = {r.check: r for r in run_checks(elsewhere)}
    for check in ("vpcd-driver", "vpcd-config"):
        assert results[check].status is Status.PROBLEM
        assert results[check].finding.startswith("Linux-only: ")
        assert "darwin" in results[check].finding
        assert results[check].fix is None
    assert results["vpcd-ports"].status is Status.OK
    assert results["vpcd-ports"].finding == "Linux-only check: skipped"


@pytest.fixture
def conf(env: Environment, tmp_path: Path) -> tuple[Environment, Path, Path]:
    """An environment with a reader.conf.d and a driver of the test's own."""
    directory = tmp_path / "reader.conf.d"
    directory.mkdir()
    drivers = tmp_path / "drivers"
    drivers.mkdir()
    driver = drivers / "libifdvpcd.so"
    driver.write_bytes(b"driver")
    changed = dataclasses.replace(env, reader_conf_dir=str(directory), driver_dirs=(str(drivers),))
    return changed, directory, driver


def entry(name: str, device: str, libpath: Path | str, channel: str | None = None) -> str:
    text = f'FRIENDLYNAME "{name}"\nDEVICENAME   {device}\nLIBPATH      {libpath}\n'
    return text + (f"CHANNELID    {channel}\n" if channel else "")


def test_vpcd_config_ok(conf: tuple[Environment, Path, Path]) -> None:
    env, directory, driver = conf
    (directory / "vpcd").write_text(entry("Virtual PCD", "/dev/null:0x8C7B", driver, "0x8C7B"))
    result = pcsc_checks.check_config(Facts(env))
    assert result.status is Status.OK
    assert result.finding.startswith(f"1 vpcd entry in {directory} (2 readers)")


def test_vpcd_config_directory_missing(conf: tuple[Environment, Path, Path]) -> None:
    env, directory, driver = conf
    gone = directory / "nowhere"
    result = pcsc_checks.check_config(Facts(dataclasses.replace(env, reader_conf_dir=str(gone))))
    assert result.status is Status.PROBLEM
    assert f"{gone} does not exist" in result.finding
    run_fix(result)
    assert pcsc_checks.check_config(
        Facts(dataclasses.replace(env, reader_conf_dir=str(gone)))
    ).status is (Status.OK)
    assert f"LIBPATH      {driver}" in (gone / "vpcd").read_text()


def test_system_vpcd_config_deleted(
    conf: tuple[Environment, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The package's conffile deleted: a plain reinstall would not bring it back."""
    env, directory, _ = conf
    monkeypatch.setattr(pcsc_checks, "SYSTEM_CONFIG_DIR", str(directory))
    result = pcsc_checks.check_config(Facts(env))
    assert result.fix == (
        "apt-get install --reinstall -y -o Dpkg::Options::=--force-confmiss vsmartcard-vpcd"
    )
    no_driver = dataclasses.replace(env, driver_dirs=(str(directory),))
    assert pcsc_checks.check_config(Facts(no_driver)).fix == "apt-get install -y vsmartcard-vpcd"


def test_vpcd_config_missing_driver_file(conf: tuple[Environment, Path, Path]) -> None:
    env, directory, driver = conf
    lost = driver.parent / "libifdvpcd-gone.so"
    (directory / "vpcd").write_text(entry("Virtual PCD", "/dev/null:35963", lost))
    result = pcsc_checks.check_config(Facts(env))
    assert result.status is Status.PROBLEM
    assert f"LIBPATH {lost} of 'Virtual PCD' does not exist" in result.finding
    run_fix(result)
    assert pcsc_checks.check_config(Facts(env)).status is Status.OK


def test_vpcd_config_reversed_mode(conf: tuple[Environment, Path, Path]) -> None:
    env, directory, driver = conf
    path = directory / "vpcd"
    path.write_text(entry("Far", "localhost:35963", driver, "35963"))
    result = pcsc_checks.check_config(Facts(env))
    assert result.status is Status.WARNING
    assert "reversed mode (DEVICENAME localhost:35963)" in result.finding
    run_fix(result)
    assert "DEVICENAME   /dev/null:35963\n" in path.read_text()
    assert pcsc_checks.check_config(Facts(env)).status is Status.OK


def test_vpcd_config_without_port(conf: tuple[Environment, Path, Path]) -> None:
    env, directory, driver = conf
    path = directory / "vpcd"
    path.write_text(entry("No port", "/dev/null", driver))
    result = pcsc_checks.check_config(Facts(env))
    assert result.status is Status.WARNING
    assert "'No port' names no port" in result.finding
    run_fix(result)
    fixed = pcsc_checks.check_config(Facts(env))
    assert fixed.status is Status.OK and "(2 readers)" in fixed.finding


def test_vpcd_config_shared_driver_file(conf: tuple[Environment, Path, Path]) -> None:
    env, directory, driver = conf
    path = directory / "vpcd"
    path.write_text(
        entry("Virtual PCD", "/dev/null:35963", driver)
        + entry("Virtual PCD B", "/dev/null:36000", driver)
    )
    result = pcsc_checks.check_config(Facts(env))
    assert result.status is Status.WARNING
    assert "'Virtual PCD B' shares its driver file with 'Virtual PCD'" in result.finding
    run_fix(result)
    copy = driver.parent / "libifdvpcd-2.so"
    assert copy.read_bytes() == driver.read_bytes()
    assert path.read_text().count(f"LIBPATH      {driver}\n") == 1
    assert f"LIBPATH      {copy}\n" in path.read_text()
    assert pcsc_checks.check_config(Facts(env)).status is Status.OK


def test_vpcd_ports_free(conf: tuple[Environment, Path, Path]) -> None:
    env, directory, driver = conf
    (port,) = pick_ports(1, random.Random())
    (directory / "vpcd").write_text(entry("Virtual PCD", f"/dev/null:{port}", driver))
    result = pcsc_checks.check_ports(Facts(env))
    assert result.status is Status.OK
    assert result.finding == f"{port}, {port + 1}: 2 ports free for a pcscd started now"


def test_vpcd_port_held_by_another_program(conf: tuple[Environment, Path, Path]) -> None:
    env, directory, driver = conf
    (port,) = pick_ports(1, random.Random())
    path = directory / "vpcd"
    path.write_text(entry("Virtual PCD", f"/dev/null:{port}", driver, str(port)))
    holder = socket.socket()
    try:
        holder.bind(("127.0.0.1", port))
        holder.listen(1)
        assert port_holders(port) == [(os.getpid(), Path("/proc/self/comm").read_text().strip())]
        result = pcsc_checks.check_ports(Facts(env))
        assert result.status is Status.WARNING and result.linux_only
        assert f"port {port} of 'Virtual PCD 00 00' is in use by " in result.finding
        assert f"(pid {os.getpid()})" in result.finding
        run_fix(result)  # moves the entry to a free pair of ports
    finally:
        holder.close()
    moved = pcsc_checks.check_ports(Facts(env))
    assert moved.status is Status.OK and str(port) not in moved.finding
    text = path.read_text()
    assert f"/dev/null:{port}" not in text and "CHANNELID    " in text


def test_no_pcscd_and_a_left_over_socket(env: Environment, tmp_path: Path) -> None:
    sock = tmp_path / "pcscd.comm"
    none = pcsc_checks.check_running(Facts(dataclasses.replace(env, socket_path=str(sock))))
    assert none.status is Status.OK and none.finding.startswith(f"no pcscd on {sock}")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(sock))
    stale.close()  # the file stays, nothing listens
    assert stat.S_ISSOCK(sock.stat().st_mode)
    left = pcsc_checks.check_running(Facts(dataclasses.replace(env, socket_path=str(sock))))
    assert left.status is Status.OK and "left over from a pcscd that is gone" in left.finding


def test_pyscard_missing(env: Environment, tmp_path: Path) -> None:
    bare = executable(tmp_path / "python", f'#!/bin/sh\nexec {sys.executable} -I -S "$@"\n')
    result = check_pyscard(Facts(dataclasses.replace(env, python=str(bare))))
    assert result.status is Status.PROBLEM
    assert "pyscard is not importable" in result.finding and "ModuleNotFoundError" in result.finding
    assert result.fix is not None and result.fix.endswith(f"{bare} -m pip install pyscard")


def test_pyscard_with_another_libpcsclite(env: Environment, tmp_path: Path) -> None:
    system = system_libpcsclite(env.path, 10)
    if not system:
        pytest.skip("no system libpcsclite here (apt-get install -y libpcsclite1)")
    other = "/opt/other/lib/libpcsclite.so.1.0.0"
    answer = json.dumps({"version": "2.3.1", "module": "x.so", "libraries": [other]})
    fake = executable(tmp_path / "python", f"#!/bin/sh\necho '{answer}'\n")
    result = check_pyscard(Facts(dataclasses.replace(env, python=str(fake))))
    assert result.status is Status.WARNING
    assert f"loads {other}, not the system's {system[0]}" in result.finding
    assert result.fix == f"export LD_PRELOAD={system[0]}"
    through_path = dataclasses.replace(
        env, python=str(fake), ld_library_path="/opt/other/lib:/usr/local/lib"
    )
    assert check_pyscard(Facts(through_path)).fix == "export LD_LIBRARY_PATH=/usr/local/lib"


def test_pyscard_of_this_python(env: Environment) -> None:
    result = check_pyscard(Facts(env))
    assert result.status is Status.OK, result
    assert "the system's libpcsclite" in result.finding


def test_opensc_missing_is_a_warning(env: Environment, tmp_path: Path) -> None:
    result = check_opensc(Facts(dataclasses.replace(env, path=str(tmp_path))))
    assert result.status is Status.WARNING
    assert result.fix == "apt-get install -y opensc"


def test_font_missing_is_a_problem(env: Environment) -> None:
    def no_font() -> FontFace:
        raise RuntimeError("no Noto Sans CJK JP font found")

    result = check_font(Facts(dataclasses.replace(env, find_font=no_font)))
    assert result.status is Status.PROBLEM
    assert "default demo persona" in result.finding
    assert result.fix == "apt-get install -y fonts-noto-cjk"


def test_pki_directory_states(env: Environment, tmp_path: Path) -> None:
    new = check_pki(Facts(env))
    assert new.status is Status.OK
    assert new.finding == f"{tmp_path / 'pki'} does not exist yet; it can be made in {tmp_path}"
    (tmp_path / "pki").mkdir()
    assert check_pki(Facts(env)).finding == f"{tmp_path / 'pki'} is writable"
    blocker = tmp_path / "file"
    blocker.write_text("")
    blocked = check_pki(Facts(dataclasses.replace(env, pki_dir=blocker / "pki")))
    assert blocked.status is Status.PROBLEM
    assert f"{blocker} is not a directory" in blocked.finding
    assert blocked.fix == f"export MYNACARD_PKI={tmp_path}/home/.local/share/mynacard/pki"
    assert list((tmp_path / "pki").iterdir()) == []


def test_a_broken_check_is_reported_not_raised(env: Environment) -> None:
    def broken() -> FontFace:
        raise ValueError("font finder broke")

    results = {r.check: r for r in run_checks(dataclasses.replace(env, find_font=broken))}
    assert list(results) == CHECKS
    assert results["font"].status is Status.PROBLEM
    assert results["font"].finding == "the check itself failed: ValueError: font finder broke"


def test_exit_status_ignores_warnings() -> None:
    warning = Result("opensc", "OpenSC", Status.WARNING, "missing", "apt-get install -y opensc")
    problem = Result("pcscd", "pcscd", Status.PROBLEM, "missing", "apt-get install -y pcscd")
    assert exit_status([warning]) == 0
    assert exit_status([warning, problem]) == 1


@pytest.mark.parametrize(("owned", "fix"), [(True, "chmod u+w {pki}"), (False, "export")])
def test_pki_permission_denied(
    env: Environment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, owned: bool, fix: str
) -> None:
    """What a non-root user meets with a mode 0500 directory (root is not refused, so the
    refusal is simulated): their own directory gets chmod, someone else's another place."""
    pki = tmp_path / "pki"
    pki.mkdir()
    refused = probes.Writability(
        pki, True, error=PermissionError(errno.EACCES, "Permission denied")
    )
    monkeypatch.setattr(probes, "probe_writable", lambda directory: refused)
    monkeypatch.setattr(probes, "immutable", lambda path: False)
    monkeypatch.setattr(host_checks, "_owned", lambda path: owned)
    result = check_pki(Facts(dataclasses.replace(env, pki_dir=pki)))
    assert result.status is Status.PROBLEM
    if owned:
        assert result.finding.startswith(
            f"PKI directory {pki} is not writable: no write permission"
        )
        assert result.fix == fix.format(pki=pki)
    else:
        assert "Permission denied" in result.finding
        assert result.fix is not None and result.fix.startswith("export MYNACARD_PKI=")
