"""Secure messaging of the 券面事項入力補助AP: the wire protocol both ends share.

As the myna-card crate (``src/sm.rs``, measured on real cards) describes it:

* key delivery: SET SESSION KEY ``80 AE 00 00`` carries RSA-OAEP (SHA-256, MGF1-SHA-256, no
  label) of ``A0 22 80 20 <32-byte seed>`` under the key published in EF ``0006``; the session key
  is the first 16 bytes of the seed;
* confidentiality only (no checksum): AES-128-CBC, the IV of message ``N`` is AES(key, N as 16
  big-endian bytes); ``N`` starts at 1 after SET SESSION KEY and both directions of one command
  use the same ``N``;
* ISO/IEC 7816-4 padding (``80`` then ``00`` to a block boundary), always added;
* command data holds exactly one data object: ``86 L 01 ‖ ciphertext`` (VERIFY, SELECT FILE) or
  ``96 03 00 ‖ expected length`` (READ BINARY, ``0`` = to the end of the file); a response
  carries ``86 L 01 ‖ ciphertext``.

Pure functions over bytes; the card keeps its counter, the host keeps its own.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from apdu import tlv
from apdu.errors import CodecError

BLOCK = 16
SEED_LENGTH = 32
SESSION_KEY_LENGTH = 16
CLA_SM = 0x08
"""Secure messaging, header not authenticated: the only SM class the text AP accepts."""
CLA_SM_AUTHENTICATED_HEADER = 0x0C
TAG_CRYPTOGRAM = 0x86
TAG_EXPECTED_LENGTH = 0x96
PADDING_INDICATOR = 0x01
KEY_DELIVERY_PREFIX = bytes((0xA0, 2 + SEED_LENGTH, 0x80, SEED_LENGTH))
"""``A0 22 80 20``: the encryption-key form, the only one the card accepts."""


class SecureMessagingError(CodecError):
    """A secure-messaging object that does not decode (the card answers ``6988``)."""


def key_delivery_message(seed: bytes) -> bytes:
    """``A0 22 80 20 ‖ seed``: what the host encrypts under the EF ``0006`` key."""
    if len(seed) != SEED_LENGTH:
        raise ValueError(f"the seed must be {SEED_LENGTH} bytes, got {len(seed)}")
    return KEY_DELIVERY_PREFIX + seed


def session_key_from_delivery(message: bytes) -> bytes | None:
    """The session key in a decrypted delivery message, or ``None`` for any other structure."""
    if len(message) != len(KEY_DELIVERY_PREFIX) + SEED_LENGTH:
        return None
    if not message.startswith(KEY_DELIVERY_PREFIX):
        return None
    return message[len(KEY_DELIVERY_PREFIX) : len(KEY_DELIVERY_PREFIX) + SESSION_KEY_LENGTH]


def pad(data: bytes) -> bytes:
    """ISO/IEC 7816-4 padding, always added (an aligned input grows by a whole block)."""
    padded = data + b"\x80"
    return padded + b"\x00" * (-len(padded) % BLOCK)


def unpad(data: bytes) -> bytes:
    """Remove ISO/IEC 7816-4 padding; :class:`SecureMessagingError` when there is none."""
    stripped = data.rstrip(b"\x00")
    if not stripped or stripped[-1] != 0x80 or len(data) - len(stripped) >= BLOCK:
        raise SecureMessagingError("decrypted data does not end in 80 00 … padding")
    return stripped[:-1]


def _ecb_block(key: bytes, block: bytes) -> bytes:
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305 - one block
    return encryptor.update(block) + encryptor.finalize()


def iv(key: bytes, counter: int) -> bytes:
    """The IV of message ``counter``: AES(key, counter as 16 big-endian bytes)."""
    return _ecb_block(key, counter.to_bytes(BLOCK, "big"))


def encrypt(key: bytes, counter: int, plaintext: bytes) -> bytes:
    """Pad and encrypt ``plaintext`` as message ``counter``."""
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv(key, counter))).encryptor()
    return encryptor.update(pad(plaintext)) + encryptor.finalize()


def decrypt(key: bytes, counter: int, ciphertext: bytes) -> bytes:
    """Decrypt message ``counter`` and remove its padding (:class:`SecureMessagingError`)."""
    if not ciphertext or len(ciphertext) % BLOCK:
        raise SecureMessagingError(
            f"a cryptogram of {len(ciphertext)} bytes is not a whole number of blocks"
        )
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv(key, counter))).decryptor()
    return unpad(decryptor.update(ciphertext) + decryptor.finalize())


def cryptogram_object(ciphertext: bytes) -> bytes:
    """``86 L 01 ‖ ciphertext`` (shortest BER length)."""
    return tlv.encode(TAG_CRYPTOGRAM, bytes((PADDING_INDICATOR,)) + ciphertext)


def expected_length_object(length: int) -> bytes:
    """``96 03 00 ‖ length`` (two bytes; ``0`` asks for the rest of the file)."""
    if not 0 <= length <= 0xFFFF:
        raise ValueError(f"expected length must be 0-65535, got {length}")
    return tlv.encode(TAG_EXPECTED_LENGTH, b"\x00" + length.to_bytes(2, "big"))


def single_object(data: bytes, tag: int) -> bytes:
    """The value of the one data object ``tag`` that fills ``data`` exactly.

    Anything else (no object, another tag, a second object, trailing bytes) raises
    :class:`SecureMessagingError`, as the card answers ``6988`` to it.
    """
    try:
        objects = tlv.decode_all(data)
    except CodecError as exc:
        raise SecureMessagingError(f"command data is not one data object ({exc})") from None
    if len(objects) != 1 or objects[0].tag != tag:
        tags = " ".join(f"{item.tag:02X}" for item in objects) or "none"
        raise SecureMessagingError(f"expected exactly one data object {tag:02X}, got {tags}")
    return objects[0].value


def parse_cryptogram(data: bytes) -> bytes:
    """The ciphertext inside ``86 L 01 ‖ ciphertext`` (strict, as the card reads it)."""
    value = single_object(data, TAG_CRYPTOGRAM)
    if not value or value[0] != PADDING_INDICATOR:
        raise SecureMessagingError("the padding-content indicator must be 01")
    return value[1:]


def parse_expected_length(data: bytes) -> int:
    """The length asked for by ``96 L <1-3 bytes>`` (``0`` = to the end of the file)."""
    value = single_object(data, TAG_EXPECTED_LENGTH)
    if not 1 <= len(value) <= 3 or (len(value) == 3 and value[0]):
        raise SecureMessagingError("the expected-length object must hold at most 2 bytes of length")
    return int.from_bytes(value, "big")
