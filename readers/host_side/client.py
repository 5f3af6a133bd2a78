"""Host-side client for My Number cards: one :class:`CardProtocol` with a session per application.

    client = MynaClient(InProcessTransport(card))
    client.jpki.token_info()           # or client.token_info(): the JPKI shortcuts stay
    client.common.card_record()
    client.text.unlock_with_pin("1234"); client.text.my_number()

Works the same against the emulator in-process, through PC/SC, and on a real card. Safety
interlock for real cards: :meth:`MynaClient.verify` refuses an attempt that could block a
credential (one try left) unless ``force=True``.
"""

from __future__ import annotations

from cryptography import x509

from readers.host_side.common import CommonSession, JukiSession
from readers.host_side.jpki import JpkiCredential, JpkiSession, TokenInfo
from readers.host_side.kenmen_ap import KenmenReader
from readers.host_side.protocol import CardProtocol
from readers.host_side.text_ap import TextApReader
from readers.host_side.transport import Transport

__all__ = ["MynaClient"]


class MynaClient(CardProtocol):
    """Reads and uses the applications of a My Number card."""

    def __init__(self, transport: Transport) -> None:
        super().__init__(transport)
        self._jpki = JpkiSession(self)

    # --- sessions ---------------------------------------------------------------------------

    @property
    def jpki(self) -> JpkiSession:
        """The 公的個人認証AP."""
        return self._jpki

    @property
    def text(self) -> TextApReader:
        """The 券面事項入力補助AP (in the clear; :class:`TextApSession` for secure messaging)."""
        return TextApReader(self)

    @property
    def kenmen(self) -> KenmenReader:
        """The 券面事項確認AP (券面AP)."""
        return KenmenReader(self)

    @property
    def common(self) -> CommonSession:
        """The 共通AP."""
        return CommonSession(self)

    @property
    def juki(self) -> JukiSession:
        """The 住基AP."""
        return JukiSession(self)

    # --- JPKI shortcuts ---------------------------------------------------------------------

    def select_jpki(self) -> None:
        """SELECT the JPKI-AP."""
        self._jpki.select()

    def token_info(self) -> TokenInfo:
        """JPKI EF ``0006`` (see :meth:`JpkiSession.token_info`)."""
        return self._jpki.token_info()

    def certificate(self, fid: int) -> x509.Certificate:
        """A JPKI certificate (see :meth:`JpkiSession.certificate`)."""
        return self._jpki.certificate(fid)

    def retries(self, credential: JpkiCredential) -> int:
        """Tries left of a JPKI credential (see :meth:`JpkiSession.retries`)."""
        return self._jpki.retries(credential)

    def verify(self, credential: JpkiCredential, secret: str, *, force: bool = False) -> None:
        """VERIFY a JPKI credential with the one-try-left interlock (see
        :meth:`JpkiSession.verify`)."""
        self._jpki.verify(credential, secret, force=force)

    def sign(self, credential: JpkiCredential, data: bytes, algorithm: str = "sha256") -> bytes:
        """Sign ``data`` with a JPKI key (see :meth:`JpkiSession.sign`)."""
        return self._jpki.sign(credential, data, algorithm)
