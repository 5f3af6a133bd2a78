"""``mynacard issue``: bulk personalization into durable card images, with an index."""

from __future__ import annotations

import contextlib
import json
import secrets
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from apdu.vocabulary import Jpki, Text
from card_emulator import Card, mynumber
from card_emulator import persona as persona_module
from card_emulator.personalize import personalize
from harness.default_pki import pki_store
from harness.issuance import cli as issue_cli
from harness.issuance import engine as issuance
from harness.issuance.personas import adult_birth_dates, card_expiry, derive_personas, persona_text
from harness.personas import persona_data
from jpki import pki_store as pki_store_module
from jpki.names import Municipality
from jpki.pki_store import PkiError
from tests.conftest import DEMO_PERSONA

SELECT_JPKI = bytes.fromhex("00A4040C0AD392F000260100000001")
SELECT_AUTH_CERT = bytes.fromhex("00A4020C02000A")


def _issue(*argv: str) -> int:
    return issue_cli.main(["issue", *argv])


def _public_der(card: Card, application: str, fid: int) -> bytes:
    key = card.content.application(application).keys[fid].public_key
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)


def _read_file(card: Card) -> bytes:
    data = b""
    while True:
        p1, p2 = divmod(len(data), 256)
        response = card.transmit(bytes([0x00, 0xB0, p1, p2, 0x00]))
        if response[-2:] != b"\x90\x00" or len(response) == 2:
            return data
        data += response[:-2]
        if len(response) < 258:
            return data


@pytest.fixture(scope="module")
def issued(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], str]:
    out = tmp_path_factory.mktemp("issued") / "cards"
    capture = tmp_path_factory.mktemp("capture") / "stdout"
    with capture.open("w") as stdout, contextlib.redirect_stdout(stdout):
        status = _issue("--count", "5", "--out", str(out), "--seed", "7", "--jobs", "2")
    assert status == 0
    index = json.loads((out / "index.json").read_text("utf-8"))
    return out, index, capture.read_text("utf-8")


def test_index_lists_every_card(issued: tuple[Path, dict[str, Any], str]) -> None:
    out, index, stdout = issued
    assert index["format"] == "mynacard-issue/1"
    assert index["count"] == 5 and index["seed"] == 7
    cards = index["cards"]
    assert [c["number"] for c in cards] == [1, 2, 3, 4, 5]
    assert [c["label"] for c in cards] == [f"demo-000{n}" for n in range(1, 6)]
    for entry in cards:
        assert (out / entry["persona"]).is_file() and (out / entry["image"]).is_file()
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["index.json", *(c["persona"] for c in cards), *(c["image"] for c in cards)]
    )
    assert "issued 5 card(s)" in stdout and "cards/s" in stdout


def test_personas_are_valid_and_distinct(issued: tuple[Path, dict[str, Any], str]) -> None:
    out, index, _ = issued
    personas = [persona_module.load(out / c["persona"]) for c in index["cards"]]
    numbers = [p.holder.my_number for p in personas]
    assert all(mynumber.is_valid(n) for n in numbers)
    assert len(set(numbers)) == 5 and "314159265352" not in numbers
    for field in ("name", "resident_code"):
        assert len({getattr(p.holder, field) for p in personas}) == 5
    assert len({p.card.serial for p in personas}) == 5
    for persona, entry in zip(personas, index["cards"], strict=True):
        assert persona.label == entry["label"]
        assert persona.holder.my_number == entry["my_number"]
        assert persona.holder.name == entry["name"]
        assert persona.card.expiry == card_expiry(persona.card.issued, persona.holder.birth_date)
        assert persona.pins.jpki_auth == "1234"  # the base's PINs


def test_images_open_and_answer(issued: tuple[Path, dict[str, Any], str]) -> None:
    out, index, _ = issued
    auth_keys, sign_keys, text_keys = set(), set(), set()
    store = pki_store()
    for entry in index["cards"]:
        with Card.from_persona(out / entry["persona"], image=out / entry["image"]) as card:
            assert card.transmit(SELECT_JPKI) == b"\x90\x00"
            assert card.transmit(SELECT_AUTH_CERT) == b"\x90\x00"
            certificate = x509.load_der_x509_certificate(_read_file(card))
            assert f"{certificate.serial_number:X}" == entry["auth_certificate_serial"]
            assert card.transmit(bytes.fromhex("00200098")) == b"\x63\xc3"  # 0018: 3 tries
            auth_keys.add(_public_der(card, "jpki", Jpki.KEY_AUTH))
            sign_keys.add(_public_der(card, "jpki", Jpki.KEY_SIGN))
            text_keys.add(_public_der(card, "text", Text.KEY))
        records = store.certificates(persona=entry["label"])
        assert {f"{r.serial:X}" for r in records} >= {
            entry["auth_certificate_serial"],
            entry["sign_certificate_serial"],
        }
    assert len(auth_keys) == 5 and len(sign_keys) == 5 and not auth_keys & sign_keys
    assert len(text_keys) == 1  # the run's shared non-JPKI key pool (documented)
    assert index["shared_keys"] == ["text_ap", "text_sm", "kenmen_card", "common"]


def test_unique_keys_and_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cards"
    assert _issue("--count", "2", "--out", str(out), "--jobs", "1", "--prefix", "u") == 0
    first = json.loads((out / "index.json").read_text("utf-8"))
    assert _issue("--count", "2", "--out", str(out), "--jobs", "1", "--prefix", "u") == 2
    assert "not empty" in capsys.readouterr().err
    argv = ["--count", "2", "--out", str(out), "--jobs", "1", "--prefix", "u", "--unique-keys"]
    assert _issue(*argv, "--force") == 0
    again = json.loads((out / "index.json").read_text("utf-8"))
    assert again["shared_keys"] == []
    assert [c["my_number"] for c in again["cards"]] == [c["my_number"] for c in first["cards"]]
    assert (
        again["cards"][0]["auth_certificate_serial"] != first["cards"][0]["auth_certificate_serial"]
    )
    text_keys = set()
    for entry in again["cards"]:
        with Card.from_persona(out / entry["persona"], image=out / entry["image"]) as card:
            text_keys.add(_public_der(card, "text", Text.KEY))
    assert len(text_keys) == 2


def test_derivation_is_deterministic_and_valid() -> None:
    base = persona_data(DEMO_PERSONA)
    one = list(derive_personas(base, 200, seed=3, prefix="p", base_dir=DEMO_PERSONA.parent))
    two = list(derive_personas(base, 200, seed=3, prefix="p", base_dir=DEMO_PERSONA.parent))
    other = list(derive_personas(base, 200, seed=4, prefix="p", base_dir=DEMO_PERSONA.parent))
    assert one == two and one != other
    for field in ("my_number", "resident_code", "name"):
        assert len({tables["holder"][field] for _, tables in one}) == 200
    assert len({tables["card"]["serial"] for _, tables in one}) == 200
    text = persona_text(one[-1][1], base=DEMO_PERSONA, seed=3)
    persona = persona_module.parse(text)
    assert persona.label == "p-0200"
    assert mynumber.is_valid(persona.holder.my_number)
    age = persona.card.issued.year - persona.holder.birth_date.year
    assert 19 <= age <= 81


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--count", "0"], "--count must be 1-1,000,000, not 0"),
        (["--count", "2", "--jobs", "-1"], "--jobs must be 1 or more"),
        (["--count", "2", "--prefix", "../x"], "--prefix '../x'"),
        (["--count", "2", "--base", "missing.toml"], "--base: missing.toml: cannot read persona"),
    ],
)
def test_bad_arguments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    out = tmp_path / "cards"
    assert _issue(*argv, "--out", str(out)) == 2
    err = capsys.readouterr().err
    assert err.startswith("mynacard issue: ") and message in err
    assert "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())


def test_bad_base_persona_names_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        DEMO_PERSONA.read_text("utf-8").replace('"314159265352"', '"314159265353"'), "utf-8"
    )
    assert _issue("--count", "2", "--base", str(bad), "--out", str(tmp_path / "cards")) == 2
    assert "holder.my_number: check digit should be 2, not 3" in capsys.readouterr().err


def test_out_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    assert _issue("--count", "1", "--out", str(target)) == 2
    assert "is not a directory" in capsys.readouterr().err


def test_missing_count_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        _issue("--out", "x")
    assert info.value.code == 2
    assert "--count" in capsys.readouterr().err


def test_a_taken_serial_is_drawn_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """Parallel issuers share one PKI database: its (CA, serial) key decides, and a random
    serial already taken is drawn again (a given one is refused)."""
    store = pki_store()
    persona = persona_module.load(DEMO_PERSONA)
    first = personalize(persona, store=store)
    taken = int(first.meta["auth_certificate_serial"], 16)
    fresh = [secrets.randbits(63) | 1 for _ in range(2)]
    draws = iter([taken, *fresh])
    monkeypatch.setattr(pki_store_module, "random_serial_number", lambda: next(draws))
    second = personalize(persona, store=store)
    assert second.meta["auth_certificate_serial"] == f"{fresh[0]:X}"
    assert second.meta["sign_certificate_serial"] == f"{fresh[1]:X}"
    key = first.application("jpki").keys[Jpki.KEY_AUTH].public_key
    record = store.certificates(serial=taken)[0]
    with pytest.raises(PkiError, match="already recorded"):
        store.issue_user_certificate(
            record.tree,
            record.style,
            key,
            persona="again",
            not_before=record.not_before,
            not_after=record.not_after,
            holder=None,
            municipality=Municipality("Tokyo-to", "Chiyoda-ku", "13101"),
            serial_number=taken,
        )


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_card_that_fails_stops_the_run(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    jobs: str,
) -> None:
    if jobs != "1" and issuance._mp_context().get_start_method() != "fork":
        pytest.skip("the failure is planted by monkeypatching, which only forked workers see")
    real = issuance.personalize

    def failing(persona: persona_module.Persona, **kwargs: Any) -> Any:
        if persona.label == "demo-0002":
            raise persona_module.PersonaError("certificates.issued: planted failure")
        return real(persona, **kwargs)

    monkeypatch.setattr(issuance, "personalize", failing)  # where the engine looks it up
    out = tmp_path / "cards"
    assert _issue("--count", "3", "--out", str(out), "--jobs", jobs) == 2
    err = capsys.readouterr().err
    assert "card demo-0002: certificates.issued: planted failure" in err
    assert "Traceback" not in err and not (out / "index.json").exists()


@pytest.mark.parametrize(
    ("issued", "birth", "expiry"),
    [
        (date(2025, 3, 3), date(1980, 5, 2), date(2034, 5, 2)),
        (date(2025, 5, 2), date(1980, 5, 2), date(2035, 5, 2)),  # issued on the birthday
        (date(2021, 2, 27), date(2000, 2, 29), date(2030, 2, 28)),
        (date(2021, 2, 28), date(2000, 2, 29), date(2031, 2, 28)),  # 28 Feb: that year's birthday
        (date(2022, 3, 1), date(2000, 2, 29), date(2032, 2, 29)),  # ends in a leap year
        (date(2020, 2, 29), date(2000, 2, 29), date(2030, 2, 28)),
    ],
)
def test_card_expiry_is_the_10th_birthday_after_issue(
    issued: date, birth: date, expiry: date
) -> None:
    assert card_expiry(issued, birth) == expiry


@pytest.mark.parametrize(
    ("issued", "oldest", "youngest"),
    [
        (date(2025, 3, 3), date(1944, 3, 4), date(2005, 3, 3)),
        (date(2024, 2, 29), date(1943, 3, 1), date(2004, 2, 29)),  # issued on a leap day
        (date(2025, 2, 28), date(1944, 2, 29), date(2005, 2, 28)),
    ],
)
def test_adult_birth_dates(issued: date, oldest: date, youngest: date) -> None:
    assert adult_birth_dates(issued) == (oldest, youngest)
