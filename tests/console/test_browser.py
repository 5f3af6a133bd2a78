"""The console page in a real browser: Debian's Chromium driven by Selenium (chromedriver), over
a real chain — a private pcscd with vpcd readers, a CardServer of two demo cards, the console
(CardController.for_server + ConsoleServer) — and a pyscard client talking to the same cards.

One Chromium and one console for the module; the tests run in file order and each leaves the
cards as it found them (inserted, counters full). A screenshot of the two readers at 1280×800
is written to ``$MYNACARD_TEST_OUTPUT`` (default ``build/test-output/``).
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from apdu import builders
from apdu.command import mask_hex
from apdu.vocabulary import Jpki
from card_emulator import Card
from card_emulator import persona as persona_module
from card_emulator.personalize import personalize
from harness import plugin
from harness.card_server import Endpoint
from harness.console import CardController
from harness.console.web.server import ConsoleServer
from harness.personas import demo_persona_path, write_persona
from harness.traces.trace_file import read_trace
from jpki.pki_store import PkiStore
from readers.card_side.pcscd import PrivatePcscd
from readers.host_side.client import MynaClient
from readers.host_side.pcsc import PcscTransport, PcscTransportError

try:
    from selenium import webdriver
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait
except ImportError:  # the browser fixture says so (a failure under CI)
    SELENIUM = False
else:
    SELENIUM = True

pytestmark = [pytest.mark.pcsc, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
REPO = Path(__file__).resolve().parents[2]
WAIT = 15.0  # seconds any wait on the page or the reader may take before the test fails

RIGHT_PIN = b"1234"  # the demo persona's 利用者証明用暗証番号 (harness/data/personas/demo.toml)
WRONG_PIN = b"8642"
OTHER_NAME = "試験　次郎"
SELECT_JPKI = builders.select_aid(Jpki.AID).to_bytes()


def sw(response: bytes) -> int:
    return int.from_bytes(response[-2:], "big")


def verify_auth(pin: bytes) -> bytes:
    return builders.verify(pin, sfi=0x18).to_bytes()


def auth_certificate(reader: str) -> bytes:
    with PcscTransport(reader) as transport:
        client = MynaClient(transport)
        client.select_jpki()
        return client.certificate(Jpki.EF_AUTH_CERT).public_bytes(Encoding.DER)


# -- the chain: pcscd, cards, console ----------------------------------------------------------


@dataclass
class Console:
    pcscd: PrivatePcscd
    controller: CardController
    server: ConsoleServer
    readers: list[str]
    certificates: list[bytes]
    """Each reader's JPKI auth certificate as a PC/SC client read it at the start."""


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    if not SELENIUM:
        _missing("selenium is not installed (pip install -e '.[test]')")
    for program in (CHROMIUM, CHROMEDRIVER):
        if not os.access(program, os.X_OK):
            _missing(f"{program} is not installed (apt-get install chromium chromium-driver)")
    if plugin.pcsc_missing() is not None:
        pytest.skip(f"PC/SC test skipped: {plugin.pcsc_missing()}")
    # the plugin's shared private pcscd (libpcsclite allows one pcscd socket per process, and
    # tests/console/test_control.py uses the same one through the myna_pcscd fixture)
    pcscd = plugin._shared.get(Path(__file__).parent)
    readers = pcscd.readers[:2]
    pki = PkiStore.in_memory()  # this module's certificates only: holds touch no other test
    demo = persona_module.load(demo_persona_path())
    cards = [(f"card {n}", Card(personalize(demo, store=pki))) for n in range(2)]
    folder = tmp_path_factory.mktemp("personas")
    other = write_persona(folder / "other.toml", label="other", holder={"name": OTHER_NAME})
    shutil.copy(demo_persona_path(), folder / "demo.toml")
    controller = CardController.serve(
        cards,
        pki=pki,
        endpoints=[Endpoint(r.host, r.port, r.name, r.netns) for r in readers],
    )
    with controller:
        names = controller.readers
        for name in names:
            pcscd.wait_for_card(name, timeout=WAIT)
        certificates = [auth_certificate(name) for name in names]
        with ConsoleServer(controller, personas=[folder / "demo.toml", other]) as server:
            yield Console(pcscd, controller, server, names, certificates)
    for name in names:  # the next test finds the readers empty
        pcscd.wait_for_card(name, present=False, timeout=WAIT)


def _missing(reason: str) -> None:
    """Skip, or fail under CI (scripts/dev.sh test installs everything these tests need)."""
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser(console: Console, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    profile = tmp_path_factory.mktemp("chromium-profile")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM  # Debian's: Selenium Manager never downloads a browser
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--window-size=1280,800",
        "--lang=ja",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.set_page_load_timeout(WAIT)
        viewport(driver, 1280, 800)
        driver.get(console.server.url)
        wait(driver, lambda d: js(d, "return document.body.dataset.readers") == "2")
        wait(driver, lambda d: js(d, "return connection()") == "live")
        yield driver
    finally:
        driver.quit()


# -- page helpers ---------------------------------------------------------------------------

_HELPERS = """
const panel = (i) => document.querySelector(`section[data-reader="${i}"]`);
const field = (i, name) => panel(i).querySelector(`[data-field="${name}"]`).textContent;
const row = (i, name) => panel(i).querySelector(`tr[data-credential="${name}"]`);
const connection = () => document.getElementById("connection").dataset.connection;
"""


def js(driver: Any, script: str, *args: Any) -> Any:
    """Run ``script`` in the page with the helpers above defined."""
    return driver.execute_script(_HELPERS + script, *args)


def wait(driver: Any, condition: Callable[[Any], Any], timeout: float = WAIT) -> Any:
    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(condition)


def viewport(driver: Any, width: int, height: int, *, mobile: bool = False) -> None:
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile},
    )


def field(driver: Any, reader: int, name: str) -> str:
    return str(js(driver, "return field(arguments[0], arguments[1])", reader, name))


def wait_field(driver: Any, reader: int, name: str, expected: str) -> None:
    try:
        wait(driver, lambda d: expected in field(d, reader, name))
    except TimeoutException:
        shown = field(driver, reader, name)
        raise AssertionError(
            f"reader {reader} {name}: {shown!r}, waited for {expected!r}"
        ) from None


def click(driver: Any, reader: int, action: str, within: str = "") -> None:
    """Click the ``data-action`` button of ``reader`` (inside the ``within`` selector), once it
    is enabled."""
    selector = f'section[data-reader="{reader}"] {within} button[data-action="{action}"]'
    button = wait(driver, lambda d: _enabled(d, selector))
    button.click()


def _enabled(driver: Any, selector: str) -> Any:
    button = driver.find_element(By.CSS_SELECTOR, selector)
    return button if button.is_enabled() and button.is_displayed() else False


def element(driver: Any, reader: int, selector: str) -> Any:
    return driver.find_element(By.CSS_SELECTOR, f'section[data-reader="{reader}"] {selector}')


def certificate_state(driver: Any, reader: int, tree: str) -> str:
    selector = f'[data-certificate="{tree}"] [data-field="cert-state"]'
    return str(element(driver, reader, selector).get_attribute("data-state"))


def credential(driver: Any, reader: int, name: str) -> dict[str, Any]:
    found: dict[str, Any] = js(
        driver,
        "const r = row(arguments[0], arguments[1]);"
        "return {tries: r.dataset.tries, max: r.dataset.max,"
        " blocked: r.classList.contains('blocked'), text: r.textContent};",
        reader,
        name,
    )
    return found


def wait_tries(driver: Any, reader: int, name: str, tries: int) -> dict[str, Any]:
    try:
        wait(driver, lambda d: credential(d, reader, name)["tries"] == str(tries))
    except TimeoutException:
        raise AssertionError(f"{name}: {credential(driver, reader, name)}") from None
    return credential(driver, reader, name)


def stream(driver: Any, reader: int) -> list[dict[str, str]]:
    """The reader's exchange rows, oldest first."""
    rows: list[dict[str, str]] = js(
        driver,
        "return [...panel(arguments[0]).querySelectorAll('[data-role=stream] tr.exchange')]"
        ".map((tr) => ({command: tr.querySelector('.command').textContent,"
        " meaning: tr.querySelector('.meaning').textContent,"
        " sw: tr.querySelector('.sw').textContent}));",
        reader,
    )
    return rows[::-1]


def error(driver: Any, reader: int, group: str) -> tuple[str | None, str]:
    shown = js(
        driver,
        'const e = panel(arguments[0]).querySelector(`[data-error="${arguments[1]}"]`);'
        "return e.hidden ? null : [e.dataset.field || null, e.textContent];",
        reader,
        group,
    )
    return (shown[0], shown[1]) if shown else (None, "")


# -- the tests --------------------------------------------------------------------------------


def test_the_page_strips_the_token_and_shows_both_readers(browser: Any, console: Console) -> None:
    assert "token" not in browser.current_url
    assert js(browser, "return location.search") == ""
    for index, name in enumerate(console.readers):
        assert name in field(browser, index, "reader")
        assert field(browser, index, "holder") == "番号　花子"
        assert field(browser, index, "persona") == "demo"
        assert "inserted" in field(browser, index, "inserted")
        assert credential(browser, index, "jpki_auth")["tries"] == "3"
    assert [c["state"] for c in console.controller.state(0).to_json()["certificates"]] == [
        "valid",
        "valid",
    ]
    assert js(
        browser,
        "return [...panel(0).querySelectorAll('[data-field=cert-state]')].map(e => e.textContent)",
    ) == ["有効 valid", "有効 valid"]


def test_remove_and_insert_from_the_page(browser: Any, console: Console) -> None:
    reader = console.readers[0]
    click(browser, 0, "remove")
    console.pcscd.wait_for_card(reader, present=False, timeout=WAIT)
    with pytest.raises(PcscTransportError):
        PcscTransport(reader).connect()
    wait_field(browser, 0, "inserted", "removed")
    assert field(browser, 1, "inserted").startswith("inserted")  # the other reader is untouched

    click(browser, 0, "insert")
    console.pcscd.wait_for_card(reader, timeout=WAIT)
    assert auth_certificate(reader) == console.certificates[0]
    wait_field(browser, 0, "inserted", "inserted")


def test_wrong_pins_block_the_row_and_unlock_refills_it(browser: Any, console: Console) -> None:
    reader = console.readers[0]
    commands = [SELECT_JPKI]
    with PcscTransport(reader) as transport:
        assert sw(transport.transmit(SELECT_JPKI)) == 0x9000
        for left in (2, 1, 0):
            commands.append(verify_auth(WRONG_PIN))
            answer = sw(transport.transmit(commands[-1]))
            assert answer == 0x63C0 | left or (left == 0 and answer in (0x6983, 0x6984))
            shown = wait_tries(browser, 0, "jpki_auth", left)
            assert f"{left} / 3" in shown["text"]
            assert shown["blocked"] == (left == 0)
        assert "blocked" in credential(browser, 0, "jpki_auth")["text"]

        click(browser, 0, "unlock", 'tr[data-credential="jpki_auth"]')
        shown = wait_tries(browser, 0, "jpki_auth", 3)
        assert not shown["blocked"]
        commands.append(verify_auth(RIGHT_PIN))
        assert sw(transport.transmit(commands[-1])) == 0x9000
        wait_field(browser, 0, "verified", "利用者証明用暗証番号")
        assert "公的個人認証AP" in field(browser, 0, "application")

    expected = [mask_hex(command) for command in commands]
    try:
        wait(browser, lambda d: [row["command"] for row in stream(d, 0)][-5:] == expected)
    except TimeoutException:
        raise AssertionError(f"stream: {stream(browser, 0)[-5:]}\nwanted: {expected}") from None
    rows = stream(browser, 0)[-5:]
    assert [row["sw"] for row in rows][-1] == "9000"
    for row in rows[1:]:
        assert row["command"].endswith("XX XX XX XX"), row
        assert "利用者証明用暗証番号" in row["meaning"], row
    _assert_no_pin(browser, console)


def _assert_no_pin(browser: Any, console: Console) -> None:
    source = browser.page_source
    # the certificate serials and event numbers are random or growing digits: drop them first
    serials = [
        c["serial"] for s in console.controller.snapshot() for c in s.to_json()["certificates"]
    ]
    cleaned = re.sub(r'data-seq="\d+"', "", source)
    for serial in serials:
        cleaned = cleaned.replace(serial, "")
    for pin in (RIGHT_PIN, WRONG_PIN):
        for form in (pin.decode(), pin.hex(" ").upper(), pin.hex().upper(), pin.hex()):
            assert form not in cleaned, f"{form!r} in the page"


def test_certificate_hold_and_release_from_the_page(browser: Any, console: Console) -> None:
    click(browser, 0, "hold", '[data-certificate="auth"]')
    wait(browser, lambda d: certificate_state(d, 0, "auth") == "hold")
    assert [c.state for c in console.controller.state(0).certificates] == ["hold", "valid"]
    click(browser, 0, "release", '[data-certificate="auth"]')
    wait(browser, lambda d: certificate_state(d, 0, "auth") == "valid")
    assert [c.state for c in console.controller.state(0).certificates] == ["valid", "valid"]


def test_revoke_with_a_reason_from_the_page(browser: Any, console: Console) -> None:
    Select(
        element(browser, 1, '[data-certificate="sign"] select[data-input="reason"]')
    ).select_by_value("keyCompromise")
    click(browser, 1, "revoke", '[data-certificate="sign"]')
    wait(browser, lambda d: certificate_state(d, 1, "sign") == "revoked")
    sign = console.controller.state(1).certificates[1]
    assert (sign.tree, sign.state, sign.reason) == ("sign", "revoked", "keyCompromise")
    assert "keyCompromise" in element(browser, 1, '[data-certificate="sign"]').text
    for action in ("revoke", "hold", "release"):  # nothing more to do with it
        assert not element(
            browser, 1, f'[data-certificate="sign"] [data-action="{action}"]'
        ).is_enabled()
    assert certificate_state(browser, 1, "auth") == "valid"


def test_faults_from_the_catalogue_and_from_an_uploaded_file(
    browser: Any, console: Console, tmp_path: Path
) -> None:
    reader = console.readers[0]
    options = js(
        browser,
        "return [...panel(0).querySelectorAll('select[data-input=scenario] option')]"
        ".map(o => o.value).filter(Boolean)",
    )
    assert "one-try-left" in options
    assert "expired-certificate" not in options  # it changes the persona: not applicable
    Select(element(browser, 0, 'select[data-input="scenario"]')).select_by_value("one-try-left")
    click(browser, 0, "apply-faults")
    wait_field(browser, 0, "faults", "one-try-left")
    wait_tries(browser, 0, "jpki_auth", 1)  # the scenario's counter preset

    upload = tmp_path / "first-select-fails.toml"
    upload.write_text(
        'name = "first-select-fails"\n[[fault]]\nkind = "status"\nmatch = "00 A4 04"\n'
        'nth = 1\nsw = "6A82"\n',
        encoding="utf-8",
    )
    element(browser, 0, 'input[data-action="upload-faults"]').send_keys(str(upload))
    wait_field(browser, 0, "faults", "first-select-fails")
    with PcscTransport(reader) as transport:
        assert [sw(transport.transmit(SELECT_JPKI)) for _ in range(2)] == [0x6A82, 0x9000]
    wait_field(browser, 0, "faults", "(fired 1)")

    broken = tmp_path / "broken.toml"
    broken.write_text("[[fault]]\nkind = 'no such fault'\n", encoding="utf-8")
    element(browser, 0, 'input[data-action="upload-faults"]').send_keys(str(broken))
    wait(browser, lambda d: error(d, 0, "faults")[0] is not None)
    assert error(browser, 0, "faults")[0] == "toml"
    assert "first-select-fails" in field(browser, 0, "faults")  # nothing changed

    click(browser, 0, "clear-faults")
    wait_field(browser, 0, "faults", "none")
    assert error(browser, 0, "faults") == (None, "")
    assert console.controller.state(0).faults is None
    click(browser, 0, "unlock", 'tr[data-credential="jpki_auth"]')  # counters outlive faults
    wait_tries(browser, 0, "jpki_auth", 3)


def test_an_uploaded_persona_that_fails_its_check_names_the_field(
    browser: Any, console: Console, tmp_path: Path
) -> None:
    broken = tmp_path / "broken-persona.toml"
    broken.write_text('label = "broken"\n[holder]\nname = "x"\n', encoding="utf-8")
    element(browser, 0, 'input[data-action="upload-persona"]').send_keys(str(broken))
    wait(browser, lambda d: error(d, 0, "persona")[0] is not None)
    assert error(browser, 0, "persona")[0] == "toml"
    assert field(browser, 0, "persona") == "demo"
    wait(browser, lambda d: js(d, "return panel(0).querySelector('[data-role=progress]').hidden"))


def test_an_api_error_is_shown_next_to_the_action_naming_the_field(
    browser: Any, console: Console
) -> None:
    box = element(browser, 1, 'tr[data-credential="jpki_auth"] [data-input="tries"]')
    box.clear()
    box.send_keys("9")
    click(browser, 1, "set-tries", 'tr[data-credential="jpki_auth"]')
    wait(browser, lambda d: error(d, 1, "credentials")[0] is not None)
    shown_field, text = error(browser, 1, "credentials")
    assert shown_field == "tries"
    assert text.startswith("tries: ")
    assert console.controller.state(1).credential("jpki_auth").tries_left == 3  # nothing changed

    box.clear()
    box.send_keys("2")
    click(browser, 1, "set-tries", 'tr[data-credential="jpki_auth"]')
    wait_tries(browser, 1, "jpki_auth", 2)
    assert error(browser, 1, "credentials") == (None, "")  # a success clears the error
    click(browser, 1, "unlock", 'tr[data-credential="jpki_auth"]')
    wait_tries(browser, 1, "jpki_auth", 3)


def test_switch_persona_shows_progress_then_the_new_holder(browser: Any, console: Console) -> None:
    reader = console.readers[1]
    Select(element(browser, 1, 'select[data-input="persona"]')).select_by_value("other")
    js(  # record every step the progress bar shows, however fast it goes by
        browser,
        "window.steps = [];"
        "const box = panel(1).querySelector('[data-role=progress]');"
        "new MutationObserver(() => { if (!box.hidden) window.steps.push(box.dataset.step); })"
        ".observe(box, {attributes: true});",
    )
    js(browser, "delete panel(1).dataset.lastAction")
    click(browser, 1, "switch-persona")
    wait(browser, lambda d: js(d, "return !panel(1).querySelector('[data-role=progress]').hidden"))
    # the switch is over when its state event arrives (a refresh may show the new holder while
    # the new card is still out of the reader, before pcscd saw the old one go)
    wait(browser, lambda d: js(d, "return panel(1).dataset.lastAction") == "switch_persona")
    assert field(browser, 1, "holder") == OTHER_NAME
    assert field(browser, 1, "persona") == "other"
    assert field(browser, 1, "inserted").startswith("inserted")
    steps = [int(step) for step in js(browser, "return window.steps") if step]
    assert steps and max(steps) >= 2, steps  # progress events from the server moved the bar
    console.pcscd.wait_for_card(reader, timeout=WAIT)
    assert auth_certificate(reader) != console.certificates[1]  # a new card, new keys
    wait(browser, lambda d: js(d, "return panel(1).querySelector('[data-role=progress]').hidden"))


def test_download_trace(browser: Any, console: Console) -> None:
    folder = Path(tempfile.mkdtemp(prefix="console-trace-"))
    try:
        browser.execute_cdp_cmd(
            "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(folder)}
        )
        click(browser, 0, "trace")
        done = wait(
            browser,
            lambda d: [p for p in folder.glob("*.jsonl") if not p.name.endswith(".crdownload")],
        )
        assert done[0].name.endswith(".trace.jsonl")
        verifies = [e for e in read_trace(done[0]).exchanges if e.command.startswith("00 20")]
        assert verifies, "the trace holds the VERIFY commands of the PIN test"
        assert all(e.command.endswith("XX XX XX XX") for e in verifies)
        text = done[0].read_text()
        for pin in (RIGHT_PIN, WRONG_PIN):
            assert pin.hex(" ").upper() not in text
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _output_folder() -> Path:
    given = os.environ.get("MYNACARD_TEST_OUTPUT")
    folder = Path(given) if given else REPO / "build" / "test-output"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_screenshot_of_two_readers(browser: Any, console: Console) -> None:
    viewport(browser, 1280, 800)
    # something to see: a blocked password on the second card
    click(browser, 1, "lock", 'tr[data-credential="jpki_sign"]')
    wait_tries(browser, 1, "jpki_sign", 0)
    try:
        boxes = js(
            browser,
            "return [0, 1].map((i) => { const r = panel(i).getBoundingClientRect();"
            " return [r.left, r.top, r.width]; })",
        )
        (left0, top0, width0), (left1, top1, _) = boxes
        assert top0 == top1 and left1 >= left0 + width0  # side by side at 1280 px
        browser.execute_script("window.scrollTo(0, 0)")
        wait(browser, lambda d: d.execute_script("return window.scrollY") == 0)
        png = browser.get_screenshot_as_png()
        path = _output_folder() / "console-two-readers.png"
        path.write_bytes(png)
        assert _png_size(png) == (1280, 800)
        assert len(png) > 30_000, "the screenshot looks empty"
    finally:
        click(browser, 1, "unlock", 'tr[data-credential="jpki_sign"]')
        wait_tries(browser, 1, "jpki_sign", 5)


def test_phone_width_has_no_horizontal_scroll_and_stacks_the_cards(browser: Any) -> None:
    viewport(browser, 390, 844, mobile=True)
    try:
        wait(browser, lambda d: js(d, "return window.innerWidth") == 390)
        widths = js(
            browser,
            "return [document.documentElement.scrollWidth, document.body.scrollWidth,"
            " window.innerWidth]",
        )
        assert max(widths[:2]) <= widths[2], widths
        first, second = js(
            browser,
            "return [0, 1].map((i) => { const r = panel(i).getBoundingClientRect();"
            " return [r.top, r.bottom, r.right]; })",
        )
        assert second[0] >= first[1]  # stacked
        assert first[2] <= 390 and second[2] <= 390
        _output_folder().joinpath("console-phone.png").write_bytes(browser.get_screenshot_as_png())
    finally:
        viewport(browser, 1280, 800)


def test_no_script_error_or_policy_violation_in_the_browser_console(browser: Any) -> None:
    # the API's own 4xx answers above are logged as network errors: those are expected
    logged = [
        entry
        for entry in browser.get_log("browser")
        if entry["level"] == "SEVERE" and entry.get("source") != "network"
    ]
    assert logged == []
