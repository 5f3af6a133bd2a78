"""Issue 19 item 4: the host-side tools with both card generations — ``--profile`` on ``demo``,
``serve`` (and serve's ``profile`` key), ``issue``; the pytest plugin's ``myna_profile``; the
trace decoder's names for a next-generation card; the persona digest over a profile file;
counter presets on a next-generation card."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from apdu import builders
from card_emulator import Card, PersonaError
from card_emulator import persona as persona_module
from harness.cli import _describe as describe_card
from harness.cli import main
from harness.console.state import holder_name
from harness.default_pki import personalize_shared
from harness.faults import traced
from harness.personas import card_from_persona, profile_persona, written_persona
from harness.plugin import ServedReader, profile_card
from harness.serve_config import ServeConfigError, load_config
from harness.traces.trace_file import TraceWriter, format_trace, read_trace
from readers.host_side.client import MynaClient
from readers.host_side.pcsc import PcscTransport
from tests.conftest import ROOT
from tests.integration.test_serve import start_serve

PROFILE = ROOT / "card_emulator" / "profiles" / "next-generation.toml"
NEXT_GENERATION = ROOT / "harness" / "data" / "personas" / "next-generation.toml"
SELECT_AUTH_AP = bytes.fromhex("00A4040C0AD392F000260100000001")

# -- the persona digest ------------------------------------------------------------------------


def test_the_persona_digest_covers_the_profile_file_it_names(tmp_path: Path) -> None:
    profile = tmp_path / "my-profile.toml"
    shutil.copyfile(PROFILE, profile)
    persona_file = tmp_path / "p.toml"
    persona_file.write_text(
        NEXT_GENERATION.read_text(encoding="utf-8").replace(
            'profile = "next-generation"', 'profile = "my-profile.toml"'
        ),
        encoding="utf-8",
    )
    before = persona_module.load(persona_file)
    assert before.profile == str(profile.resolve())
    assert before.digest == persona_module.load(persona_file).digest  # stable
    persona_bytes = persona_file.read_bytes()
    # the same persona file over an edited profile file is another card
    profile.write_text(
        profile.read_text(encoding="utf-8").replace(
            'ecdsa_signature_encoding = "raw"', 'ecdsa_signature_encoding = "der"'
        ),
        encoding="utf-8",
    )
    after = persona_module.load(persona_file)
    assert persona_file.read_bytes() == persona_bytes
    assert after.digest != before.digest
    # from_mapping and the harness's written personas fold it in too
    written = written_persona(tmp_path / "w.toml", persona_file, profile=str(profile))
    assert written.digest == persona_module.load(tmp_path / "w.toml").digest
    # a built-in profile's persona keeps the digest of its bytes alone
    builtin = persona_module.load(NEXT_GENERATION)
    assert builtin.digest == hashlib.sha256(NEXT_GENERATION.read_bytes()).hexdigest()


# -- counters on a next-generation card -----------------------------------------------------------


def test_counter_presets_name_the_credential_holding_that_pin(tmp_path: Path) -> None:
    card = card_from_persona(NEXT_GENERATION, counters={"jpki_auth": 1, "jpki_sign": 0})
    assert card.credential("auth", 0x0018).remaining == 1
    assert card.credential("auth", 0x001B).remaining == 0
    with pytest.raises(PersonaError, match=r"counters\.text_pin: the next-generation profile "):
        card_from_persona(NEXT_GENERATION, counters={"text_pin": 1})


# -- demo -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("profile", "signature"),
    [("current", "SHA-256 signature"), ("next-generation", "SHA-384 ECDSA signature")],
)
def test_demo_in_process_with_a_profile(
    profile: str, signature: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--in-process", "--profile", profile]) == 0
    out = capsys.readouterr().out
    assert signature in out, out


def test_a_profile_overrides_the_persona_in_memory(tmp_path: Path) -> None:
    path, persona = profile_persona(NEXT_GENERATION, "current")
    assert path == NEXT_GENERATION and persona.profile == "current"
    assert persona_module.load(NEXT_GENERATION).profile == "next-generation"  # file unchanged
    card = Card(personalize_shared(persona))
    assert isinstance(card.content.application("jpki").keys[0x0017].private_key, rsa.RSAPrivateKey)


def test_the_holder_s_name_is_found_on_both_generations() -> None:
    """What serve's reader lines and the console's cards show: 氏名 from today's
    券面事項入力補助AP or from the next-generation (仮称)券面等AP."""
    for profile in ("current", "next-generation"):
        card = profile_card(profile)
        try:
            assert holder_name(card) == "番号\u3000花子", profile
            assert ": 番号\u3000花子, JPKIAPICCTOKEN" in describe_card(card), profile
        finally:
            card.close()


@pytest.mark.parametrize(
    "argv",
    [
        ["demo", "--in-process", "--profile", "future"],
        ["serve", "--profile", "future"],
        ["issue", "--count", "1", "--out", "{out}", "--profile", "future"],
    ],
)
def test_an_unknown_profile_is_refused_naming_the_flag(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cards"
    assert main([a.replace("{out}", str(out)) for a in argv]) == 2
    err = capsys.readouterr().err
    assert "--profile: 'future' is neither a built-in profile (current, next-generation)" in err
    assert not out.exists()  # nothing issued, nothing made


# -- serve ----------------------------------------------------------------------------------


def test_the_serve_file_has_a_profile_key(tmp_path: Path) -> None:
    (tmp_path / "toy.toml").write_bytes(PROFILE.read_bytes())
    bench = tmp_path / "bench.toml"
    bench.write_text('profile = "next-generation"\n', encoding="utf-8")
    assert load_config(bench).profile == "next-generation"
    bench.write_text('profile = "toy.toml"\n', encoding="utf-8")
    assert load_config(bench).profile == str(tmp_path / "toy.toml")
    for text, message in (
        ('profile = "future"', "profile: 'future' is neither a built-in profile"),
        ("profile = 3", "profile: must be a card generation"),
        ('profile = "missing.toml"', "profile: .*missing.toml: cannot read profile"),
    ):
        bench.write_text(text + "\n", encoding="utf-8")
        with pytest.raises(ServeConfigError, match=rf"^{bench}: {message}"):
            load_config(bench)


@pytest.mark.pcsc
def test_serve_a_next_generation_card_read_by_the_host_client(tmp_path: Path) -> None:
    serve, text, socket_path, env = start_serve("--profile", "next-generation", cwd=tmp_path)
    try:
        assert "← demo-next-generation: 番号\u3000花子, JPKIAPICCTOKEN2" in text, text
        script = (
            "from cryptography.hazmat.primitives.asymmetric import ec\n"
            "from readers.host_side.client import MynaClient\n"
            "from readers.host_side.pcsc import PcscTransport\n"
            "from smartcard.System import readers\n"
            "with PcscTransport(str(readers()[0])) as t:\n"
            "    c = MynaClient(t)\n"
            "    c.select_jpki()\n"
            "    key = c.certificate(0x000A).public_key()\n"
            "    assert isinstance(key, ec.EllipticCurvePublicKey)\n"
            "    print(key.curve.name)\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", script],
            env={**env, "PCSCLITE_CSOCK_NAME": socket_path, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.stdout.strip() == "secp384r1", done.stderr
    finally:
        serve.terminate()  # the process this test started
        serve.communicate(timeout=30)


@pytest.mark.pcsc
def test_serve_refuses_a_profile_the_image_was_not_made_with(tmp_path: Path) -> None:
    image = tmp_path / "card.sqlite"
    env = {k: v for k, v in os.environ.items() if k != "PCSCLITE_CSOCK_NAME"}
    done = subprocess.run(
        [
            *(sys.executable, "-m", "harness.cli", "serve", "--private-socket"),
            *("--persona", str(NEXT_GENERATION), "--profile", "current", "--image", str(image)),
        ],
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "--profile current with --image" in done.stderr
    assert not image.exists()


# -- issue --------------------------------------------------------------------------------------


def test_issue_next_generation_cards(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cards"
    argv = ["issue", "--count", "3", "--out", str(out), "--profile", "next-generation"]
    assert main([*argv, "--jobs", "1", "--quiet"]) == 0, capsys.readouterr().err
    personas = sorted(out.glob("*.toml"))
    assert len(personas) == 3
    names = set()
    for path in personas:
        persona = persona_module.load(path)
        assert persona.profile == "next-generation"
        names.add((persona.holder.name, persona.holder.romanized_name))
        with Card.open(path.with_suffix(".sqlite")) as card:
            key = card.content.application("auth").keys[0x0017].private_key
            assert isinstance(key, ec.EllipticCurvePrivateKey)
            assert card.content.meta["persona_digest"] == persona.digest
    assert len(names) == 3
    assert ("番号\u3000花子", "BANGO HANAKO") not in names  # each holder's own ローマ字氏名


def test_issue_with_a_base_naming_a_profile_file(tmp_path: Path) -> None:
    """The issued persona files live elsewhere: a profile file is named by absolute path."""
    shutil.copyfile(PROFILE, tmp_path / "mine.toml")
    base = tmp_path / "base.toml"
    base.write_text(
        NEXT_GENERATION.read_text(encoding="utf-8").replace(
            'profile = "next-generation"', 'profile = "mine.toml"'
        ),
        encoding="utf-8",
    )
    out = tmp_path / "cards"
    argv = ["issue", "--count", "1", "--out", str(out), "--base", str(base), "--jobs", "1"]
    assert main([*argv, "--quiet"]) == 0
    (issued,) = out.glob("*.toml")
    assert persona_module.load(issued).profile == str((tmp_path / "mine.toml").resolve())


# -- the trace decoder -------------------------------------------------------------------------


def test_the_trace_decoder_names_a_next_generation_card(tmp_path: Path) -> None:
    path = tmp_path / "trace.jsonl"
    with TraceWriter(path, persona=NEXT_GENERATION) as writer:
        card = traced(card_from_persona(NEXT_GENERATION), writer)
        card.power_on()
        card.transmit(SELECT_AUTH_AP)
        card.transmit(bytes(builders.select_ef(0x0018)))
        card.transmit(bytes(builders.verify(b"1234")))
    meanings = [exchange.meaning for exchange in read_trace(path).exchanges]
    assert meanings[0] == "SELECT (仮称)認証AP"
    assert meanings[2] == "VERIFY 利用者証明用暗証番号 ((仮称)認証AP 0018)"
    assert "XX XX XX XX" in "\n".join(format_trace(read_trace(path)))  # still masked
    written = path.read_text(encoding="utf-8")
    assert "(仮称)認証AP" in written and "31 32 33 34" not in written
    # without the persona file (a trace from elsewhere): today's names, no error
    (tmp_path / "moved.jsonl").write_text(
        written.replace(str(NEXT_GENERATION.resolve()), str(tmp_path / "gone.toml")),
        encoding="utf-8",
    )
    assert read_trace(tmp_path / "moved.jsonl").exchanges[0].meaning == "SELECT 公的個人認証AP"


# -- the pytest plugin ------------------------------------------------------------------------


def test_profile_card_of_each_generation() -> None:
    assert isinstance(
        profile_card("next-generation").content.application("auth").keys[0x0017].private_key,
        ec.EllipticCurvePrivateKey,
    )
    assert "jpki" in [app.name for app in profile_card("current").content.applications]


@pytest.mark.parametrize("myna_profile", ["current", "next-generation"])
def test_myna_reader_of_each_generation(myna_reader: ServedReader, myna_profile: str) -> None:
    with PcscTransport(myna_reader.name) as transport:
        client = MynaClient(transport)
        client.select_jpki()
        key = client.certificate(0x000A).public_key()
    expected = ec.EllipticCurvePublicKey if myna_profile == "next-generation" else rsa.RSAPublicKey
    assert isinstance(key, expected)


PLUGIN_EXAMPLE = """
from cryptography.hazmat.primitives.asymmetric import ec


def test_card(myna_card, myna_profile):
    assert myna_profile == "next-generation"
    key = myna_card.content.application("auth").keys[0x0017].private_key
    assert isinstance(key, ec.EllipticCurvePrivateKey)


def test_persona(myna_persona):
    from card_emulator import persona
    assert persona.load(myna_persona()).profile == "next-generation"
"""


def _pytest(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    drop = ("PCSCLITE_CSOCK_NAME", "PYTEST_ADDOPTS", "MYNACARD_PROFILE")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args, "--rootdir", "."],
        cwd=directory,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_plugin_option_chooses_the_generation(tmp_path: Path) -> None:
    (tmp_path / "test_example.py").write_text(PLUGIN_EXAMPLE, encoding="utf-8")
    done = _pytest(tmp_path, "--myna-profile", "next-generation")
    assert done.returncode == 0 and "2 passed" in done.stdout, done.stdout + done.stderr
    bad = _pytest(tmp_path, "--myna-profile", "future")
    assert bad.returncode == 4, bad.stdout + bad.stderr  # a usage error, no test run
    assert "--myna-profile: 'future' is neither a built-in profile" in bad.stderr


def test_every_name_issue_draws_has_a_romanised_reading() -> None:
    from harness.issuance.personas import FAMILY_NAMES, FEMALE_NAMES, MALE_NAMES
    from harness.issuance.romaji import FAMILY_READINGS, GIVEN_READINGS

    assert set(FAMILY_NAMES) <= set(FAMILY_READINGS)
    assert set(MALE_NAMES) | set(FEMALE_NAMES) <= set(GIVEN_READINGS)
    for reading in [*FAMILY_READINGS.values(), *GIVEN_READINGS.values()]:
        assert reading.isascii() and reading.isalpha() and reading.isupper(), reading
