"""The demo: a card in a virtual reader, read back through PC/SC by our client and by OpenSC."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from apdu import builders, tlv
from apdu.vocabulary import Text
from card_emulator import Card
from card_emulator import persona as persona_module
from card_emulator.check_codes import check_code_b
from card_emulator.profiles import DEFAULT_PROFILE
from harness.card_server import CardServer
from harness.commands.summary import jpki_summary
from harness.default_pki import personalize_shared, pki_store, shared_card
from readers.host_side.client import MynaClient
from readers.host_side.kenmen_ap import KenmenReader
from readers.host_side.pcsc import PcscTransport
from readers.host_side.secure_messaging import TextApSession

OPENSC_LABEL = re.compile(r"^X\.509 Certificate \[(.+)\]$", re.MULTILINE)


def opensc_certificates(reader: str, env: dict[str, str]) -> list[str]:
    """Certificate labels ``pkcs15-tool --list-certificates`` reports for ``reader``."""
    tool = shutil.which("pkcs15-tool")
    if tool is None:
        raise RuntimeError("pkcs15-tool not found: install the Debian package 'opensc'")
    result = subprocess.run(  # noqa: S603 - fixed tool, our reader name
        [tool, "--reader", reader, "--list-certificates"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"pkcs15-tool failed: {result.stderr.strip() or result.stdout.strip()}")
    return OPENSC_LABEL.findall(result.stdout)


def _face_ap_summary(
    client: MynaClient, persona: persona_module.Persona, emit: Callable[[str], None]
) -> None:
    """The (仮称)券面等AP of a next-generation card (the AID and FIDs its profile declares)."""
    code = check_code_b(persona.holder.birth_date, persona.card.expiry, persona.card.security_code)
    client.select_application(Text.AID)
    client.expect_ok(builders.verify(code.encode("ascii"), sfi=0x15), "VERIFY 照合番号")
    face = tlv.decode_one(client.read_ef(0x0002))
    fields = {item.tag: item.value for item in face.children()}
    emit("(仮称)券面等AP, after the printed 照合番号:")
    emit(f"  氏名             {fields.get(0xDF22, b'').decode('utf-8', 'replace')}")
    emit(f"  ローマ字氏名     {fields.get(0xDF26, b'').decode('ascii', 'replace')}")
    emit(f"  住所             {fields.get(0xDF23, b'').decode('utf-8', 'replace')}")
    emit(f"  生年月日         {fields.get(0xDF24, b'').decode('ascii', 'replace')} (no 性別)")


def run_demo(
    persona_path: Path,
    emit: Callable[[str], None] = print,
    *,
    persona: persona_module.Persona | None = None,
) -> bool:
    """Serve the persona's card in a virtual reader and read it through PC/SC (``persona``:
    the persona file's contents as already loaded, e.g. with another profile)."""
    if persona is None:
        persona = persona_module.load(persona_path)
        card = shared_card(persona_path)
    else:
        card = Card(personalize_shared(persona))
    ok = True
    with CardServer([(persona.label, card)]) as server:
        served = server.served[0]
        reader = served.endpoint.reader
        assert reader is not None
        pid = server.pcscd.pid if server.pcscd is not None else "system"
        emit(f"Demo card for {persona.holder.name} in PC/SC reader {reader!r} (pcscd {pid})")
        emit(f"  ATR              {card.atr.hex(' ').upper()}")
        with PcscTransport(reader) as transport:
            client = MynaClient(transport)
            emit("JPKI-AP (公的個人認証), read with our client over pyscard:")
            ok &= jpki_summary(
                client, auth_pin=persona.pins.jpki_auth, sign_password=persona.pins.jpki_sign
            )
            if persona.profile != DEFAULT_PROFILE:
                _face_ap_summary(client, persona, emit)
                emit("(OpenSC has no driver for this card generation: not asked.)")
                emit("Stopped: card removed, pcscd stopped.")
                return ok
            store = pki_store()
            session = TextApSession.open(client, persona.pins.text)
            session.verify_check_code_a(persona.holder.my_number)
            number, attributes = session.verified_contents(store.cv_root_public_key("text"))
            emit(
                "券面事項入力補助AP under secure messaging (PIN, then 照合番号A and both files "
                "encrypted; integrity record verified up to the CV root ✓):"
            )
            emit(f"  個人番号         {number}")
            emit(f"  基本4情報        {attributes.name} / {attributes.address}")
            emit(f"                   生年月日 {attributes.birth_date} / 性別 {attributes.sex}")
            face_reader = KenmenReader(client)
            code_b = check_code_b(
                persona.holder.birth_date, persona.card.expiry, persona.card.security_code
            )
            face_reader.unlock_with_check_code_b(code_b)
            face = face_reader.face(store.cv_root_public_key("kenmen"))
            images = face.images()
            emit("券面AP, after 照合番号B (card-face signature verified ✓):")
            emit(
                f"  images           name {images['name'].size}, address {images['address'].size},"
                f" photo {images['photo'].format} {images['photo'].size}"
            )
            emit(f"  有効期限         {face.expiry}")
        labels = opensc_certificates(reader, server.env)
        emit("OpenSC (pkcs15-tool --list-certificates) sees:")
        for label in labels:
            emit(f"  {label}")
        if len(labels) != 4:
            emit("  expected four certificates ✗")
            ok = False
    emit("Stopped: card removed, pcscd stopped.")
    return ok
