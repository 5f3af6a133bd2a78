"""The pcscd manager's pieces that need no running pcscd."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from readers.card_side import pcscd_process, reader_conf
from readers.card_side.pcscd import PrivatePcscd
from readers.card_side.reader_conf import PcscdNotInstalledError, VpcdReader, parse_vpcd_config
from readers.card_side.running_pcscd import find_running_vpcd

STOCK_VPCD_CONF = """\
FRIENDLYNAME "Virtual PCD"
DEVICENAME   /dev/null:0x8C7B
LIBPATH      /usr/lib/pcsc/drivers/serial/libifdvpcd.so
CHANNELID    0x8C7B
"""


def test_parse_the_stock_vpcd_config() -> None:
    assert parse_vpcd_config(STOCK_VPCD_CONF) == [
        VpcdReader("Virtual PCD 00 00", 35963),
        VpcdReader("Virtual PCD 00 01", 35964),
    ]


def test_parse_several_entries_comments_channelid_and_reversed_mode() -> None:
    text = """
# two more readers
FRIENDLYNAME "Virtual PCD B"   # trailing comment
DEVICENAME   /dev/null:36000
LIBPATH      /opt/drivers/libifdvpcd-b.so
CHANNELID    36000

FRIENDLYNAME "Only channel id"
DEVICENAME   /dev/null
LIBPATH      /opt/drivers/libifdvpcd-c.so
CHANNELID    0x9000

FRIENDLYNAME "Reversed"
DEVICENAME   card.example:35963
LIBPATH      /opt/drivers/libifdvpcd-d.so

FRIENDLYNAME "Some CCID twin reader"
DEVICENAME   /dev/ttyS0
LIBPATH      /usr/lib/pcsc/drivers/serial/libccidtwin.so
"""
    assert [(r.name, r.port) for r in parse_vpcd_config(text)] == [
        ("Virtual PCD B 00 00", 36000),
        ("Virtual PCD B 00 01", 36001),
        ("Only channel id 00 00", 0x9000),
        ("Only channel id 00 01", 0x9001),
    ]


def test_missing_pcscd_names_the_debian_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    monkeypatch.setattr(reader_conf, "_PCSCD_CANDIDATES", ("/nonexistent/pcscd",))
    with pytest.raises(PcscdNotInstalledError, match="Debian package 'pcscd'"):
        reader_conf.find_pcscd()
    with pytest.raises(PcscdNotInstalledError, match="'pcscd'"):
        PrivatePcscd(2).start()


def test_missing_vpcd_driver_names_the_debian_package(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(reader_conf, "_DRIVER_DIRS", (str(tmp_path),))
    with pytest.raises(PcscdNotInstalledError, match="'vsmartcard-vpcd'"):
        reader_conf.find_vpcd_driver()
    with pytest.raises(PcscdNotInstalledError, match="'vsmartcard-vpcd'"):
        PrivatePcscd(2, pcscd="/bin/true", driver=str(tmp_path / "libifdvpcd.so")).start()


def test_reader_count_limits() -> None:
    for bad in (0, 17):
        with pytest.raises(ValueError, match=r"1\.\.16"):
            PrivatePcscd(bad)


def test_no_running_pcscd_without_a_socket(tmp_path: Path) -> None:
    assert find_running_vpcd(socket_path=str(tmp_path / "pcscd.comm")) is None


def test_terminate_escalates_to_sigkill() -> None:
    stubborn = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
            "print('ready', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
    )
    assert stubborn.stdout is not None
    assert stubborn.stdout.readline() == b"ready\n"
    started = time.monotonic()
    pcscd_process.terminate(stubborn, 0.3)
    assert stubborn.returncode == -9
    assert time.monotonic() - started < 5
    stubborn.stdout.close()
