"""Images for the 券面 APs (card-facts §7.1, §7.2): text as 1-bit PNG, the photo as JPEG 2000.

The 券面AP (券面事項確認AP) stores the card face as pictures: 氏名 and 住所 (DF25, DF26), the
セキュリティコード (DF2A) and, in EF ``0005``, the 個人番号 are 1-bit PNGs; the 顔写真 (DF27) is
a greyscale JPEG 2000 in a JP2 container. This module makes such images for a persona, or loads
and checks the files a persona names.

Sizes. The 個人番号 (72×12) and セキュリティコード (24×12) sizes are those of the surveyed card;
each digit gets a 6×12 cell, drawn from a hand-made 5×9 bitmap font (a TrueType font is not
legible at that size in 1 bit). Public sources give no pixel sizes for the name and address, so
we chose a face-like 400×64 (one or two lines, at most 40 px characters) for 氏名 and 800×128
(up to five lines, at most 36 px) for 住所; a 200-character address still fits, at 19 px.

Text is drawn with Noto Sans CJK JP (Debian: ``fonts-noto-cjk``), found among known paths or
with ``fc-match``; the JP face of the ``.ttc`` collection is picked by its family name. Text is
rendered at 4× with anti-aliasing, scaled down and thresholded, which gives cleaner 1-bit strokes
than FreeType's monochrome mode. Long text wraps at any character (Japanese has no spaces), with
basic 禁則 (no line starts with 。、」ー small kana and the like, none ends with an opening
bracket), and the font shrinks until the text fits.

Everything here is deterministic (same input → same bytes on the same Pillow / FreeType /
OpenJPEG) and pure: no sockets, no threads; ``fc-match`` runs only when no known font path
exists, and a found font is remembered for the process.
"""

from __future__ import annotations

import functools
import hashlib
import io
import shutil
import subprocess
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

__all__ = [
    "ADDRESS_IMAGE_SIZE",
    "FONT_FAMILY",
    "KNOWN_FONT_PATHS",
    "MAX_IMAGE_BYTES",
    "MY_NUMBER_IMAGE_SIZE",
    "NAME_IMAGE_SIZE",
    "PHOTO_SIZE",
    "SECURITY_CODE_IMAGE_SIZE",
    "FontFace",
    "ImageKind",
    "find_cjk_font",
    "load_image_file",
    "placeholder_photo_jp2",
    "render_address_png",
    "render_my_number_png",
    "render_name_png",
    "render_security_code_png",
    "render_text_png",
]

FONT_FAMILY = "Noto Sans CJK JP"
FONT_PACKAGE = "fonts-noto-cjk"
KNOWN_FONT_PATHS: tuple[Path, ...] = (
    Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),  # Debian, Ubuntu
    Path("/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc"),  # Arch
    Path("/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc"),  # Fedora
    Path("/usr/share/fonts/opentype/noto/NotoSansCJKjp-Regular.otf"),
    Path("/usr/share/fonts/noto-cjk/NotoSansCJKjp-Regular.otf"),
    Path("/usr/local/share/fonts/NotoSansCJK-Regular.ttc"),
)

NAME_IMAGE_SIZE = (400, 64)
ADDRESS_IMAGE_SIZE = (800, 128)
MY_NUMBER_IMAGE_SIZE = (72, 12)
SECURITY_CODE_IMAGE_SIZE = (24, 12)
PHOTO_SIZE = (300, 400)

NAME_MAX_LINES = 2
NAME_MAX_FONT_SIZE = 40
ADDRESS_MAX_LINES = 5
ADDRESS_MAX_FONT_SIZE = 36
MIN_FONT_SIZE = 10
"""Below this, 1-bit kanji stop being legible; text that needs less is refused."""

MAX_IMAGE_BYTES = 0xFFFF
"""An image file larger than this cannot sit in the ``FF 20 82 LL LL`` card-face template."""
MAX_IMAGE_PIXELS = 4_000_000
"""Refuse larger images before decoding them (decompression bombs)."""

_SCALE = 4  # text is drawn at 4x and scaled down
_LINE_PITCH = 1.25  # line advance, in em
_EM_ASCENT = 0.88  # top of the ideographic em box above the baseline (Noto CJK: 880/1000)
_PADDING = 4  # pixels kept clear on every side of a text image
_INK_THRESHOLD = 150  # grey levels below this (of 255) become black after scaling down

_NO_LINE_START = frozenset(
    "、。，．,.・：；:;？！?!ー－‐〜～）)］]｝}」』】〕〉》〙〗"
    "ぁぃぅぇぉっゃゅょゎゕゖァィゥェォッャュョヮヵヶ々ゝゞヽヾ〻"
)
_NO_LINE_END = frozenset("（(［[｛{「『【〔〈《〘〖")
_BREAK_SPACES = " \u3000"


# --- font -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FontFace:
    """One face of a font file (``index`` selects the JP face in a ``.ttc`` collection)."""

    path: Path
    index: int


def _jp_face_index(path: Path) -> int | None:
    """Index of the Noto Sans CJK JP face in ``path``, or ``None`` if it has none."""
    for index in range(32):
        try:
            font = ImageFont.truetype(str(path), 12, index=index)
        except OSError:
            return None  # unreadable file, or past the last face
        if font.getname()[0] == FONT_FAMILY:
            return index
    return None


def _fc_match() -> Path | None:
    """The file fontconfig picks for Noto Sans CJK JP (may be an unrelated fallback)."""
    fc_match = shutil.which("fc-match")
    if fc_match is None:
        return None
    try:
        result = subprocess.run(  # noqa: S603 - fixed argv, no shell, no user input
            [fc_match, "-f", "%{file}", FONT_FAMILY],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    name = result.stdout.strip()
    return Path(name) if result.returncode == 0 and name else None


@functools.cache
def find_cjk_font() -> FontFace:
    """The Noto Sans CJK JP face; :class:`RuntimeError` naming the package if there is none."""
    candidates = list(KNOWN_FONT_PATHS)
    if not any(path.is_file() for path in candidates):
        found = _fc_match()
        if found is not None:
            candidates.append(found)
    for path in candidates:
        if path.is_file():
            index = _jp_face_index(path)
            if index is not None:
                return FontFace(path, index)
    raise RuntimeError(
        f"no {FONT_FAMILY} font found (looked in {', '.join(map(str, KNOWN_FONT_PATHS))} and "
        f"asked fc-match); install the Debian package {FONT_PACKAGE}: "
        f"apt-get install {FONT_PACKAGE}"
    )


@functools.lru_cache(maxsize=64)
def _font(face: FontFace, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(face.path), size, index=face.index)


# --- text images ----------------------------------------------------------------------------


def _wrap(text: str, font: ImageFont.FreeTypeFont, width: int) -> list[str] | None:
    """Greedy character wrap with basic 禁則; ``None`` if a single character is too wide."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for char in paragraph:
            if not line or font.getlength(line + char) <= width:
                line += char
                continue
            carry = ""
            if char in _NO_LINE_START and len(line) > 1:
                carry, line = line[-1], line[:-1]
            while len(line) > 1 and line[-1] in _NO_LINE_END:
                carry, line = line[-1] + carry, line[:-1]
            lines.append(line.rstrip(_BREAK_SPACES))
            line = (carry + char).lstrip(_BREAK_SPACES)
        lines.append(line.rstrip(_BREAK_SPACES))
    if any(font.getlength(line) > width for line in lines):
        return None
    return lines


def _layout(
    text: str, face: FontFace, *, width: int, height: int, max_lines: int, max_font_size: int
) -> tuple[int, list[str]]:
    """The largest font size (at 1x) whose wrapped lines fit, and those lines."""
    inner_width = (width - 2 * _PADDING) * _SCALE
    inner_height = height - 2 * _PADDING
    for size in range(min(max_font_size, inner_height), MIN_FONT_SIZE - 1, -1):
        lines = _wrap(text, _font(face, size * _SCALE), inner_width)
        if lines is None or len(lines) > max_lines:
            continue
        block = (len(lines) - 1) * round(size * _LINE_PITCH) + size
        if block <= inner_height:
            return size, lines
    raise ValueError(
        f"text of {len(text)} characters does not fit {width}x{height} in {max_lines} lines "
        f"at {MIN_FONT_SIZE} px or more"
    )


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


def render_text_png(
    text: str,
    *,
    width: int,
    height: int,
    max_lines: int = ADDRESS_MAX_LINES,
    max_font_size: int | None = None,
) -> bytes:
    """``text`` in Noto Sans CJK JP, black on white, as a 1-bit (mode ``"1"``) PNG.

    Lines are left-aligned and the block is centred vertically. The font starts at
    ``max_font_size`` (default: as tall as the image allows) and shrinks until the wrapped text
    fits ``max_lines`` lines; ``"\\n"`` forces a break. :class:`ValueError` if the text is empty,
    holds other control characters, or needs a font under 10 px; :class:`RuntimeError` if no
    CJK font is installed.
    """
    if not text.strip():
        raise ValueError("nothing to render: text is empty")
    if any(ord(char) < 0x20 and char != "\n" for char in text) or "\x7f" in text:
        raise ValueError(f"text contains control characters: {text!r}")
    if width < 2 * _PADDING + MIN_FONT_SIZE or height < 2 * _PADDING + MIN_FONT_SIZE:
        raise ValueError(f"image {width}x{height} is too small for text")
    if max_lines < 1:
        raise ValueError(f"max_lines must be at least 1, got {max_lines}")
    face = find_cjk_font()
    limit = max_font_size if max_font_size is not None else height
    size, lines = _layout(
        text, face, width=width, height=height, max_lines=max_lines, max_font_size=limit
    )

    pitch = round(size * _LINE_PITCH)
    block = (len(lines) - 1) * pitch + size
    top = (height - block) // 2
    font = _font(face, size * _SCALE)
    canvas = Image.new("L", (width * _SCALE, height * _SCALE), 255)
    draw = ImageDraw.Draw(canvas)
    for number, line in enumerate(lines):
        baseline = (top + number * pitch) * _SCALE + round(_EM_ASCENT * size * _SCALE)
        draw.text((_PADDING * _SCALE, baseline), line, font=font, fill=0, anchor="ls")
    small = canvas.resize((width, height), Image.Resampling.BOX)
    return _png(small.point(lambda grey: 255 if grey >= _INK_THRESHOLD else 0, mode="1"))


def render_name_png(name: str) -> bytes:
    """氏名 image (DF25): 400×64, at most two lines."""
    width, height = NAME_IMAGE_SIZE
    return render_text_png(
        name, width=width, height=height, max_lines=NAME_MAX_LINES, max_font_size=NAME_MAX_FONT_SIZE
    )


def render_address_png(address: str) -> bytes:
    """住所 image (DF26): 800×128, at most five lines."""
    width, height = ADDRESS_IMAGE_SIZE
    return render_text_png(
        address,
        width=width,
        height=height,
        max_lines=ADDRESS_MAX_LINES,
        max_font_size=ADDRESS_MAX_FONT_SIZE,
    )


# --- digit images ---------------------------------------------------------------------------

_DIGIT_CELL = 6  # 5 px glyph + 1 px gap: 12 digits in 72 px, 4 in 24 px
_DIGIT_GLYPHS: dict[str, tuple[str, ...]] = {
    "0": (".###.", "#...#", "#...#", "#..##", "#.#.#", "##..#", "#...#", "#...#", ".###."),
    "1": ("..#..", ".##..", "#.#..", "..#..", "..#..", "..#..", "..#..", "..#..", "#####"),
    "2": (".###.", "#...#", "....#", "....#", "...#.", "..#..", ".#...", "#....", "#####"),
    "3": (".###.", "#...#", "....#", "....#", "..##.", "....#", "....#", "#...#", ".###."),
    "4": ("...#.", "..##.", ".#.#.", "#..#.", "#..#.", "#####", "...#.", "...#.", "...#."),
    "5": ("#####", "#....", "#....", "####.", "....#", "....#", "....#", "#...#", ".###."),
    "6": ("..##.", ".#...", "#....", "#....", "####.", "#...#", "#...#", "#...#", ".###."),
    "7": ("#####", "....#", "....#", "...#.", "...#.", "..#..", "..#..", "..#..", "..#.."),
    "8": (".###.", "#...#", "#...#", "#...#", ".###.", "#...#", "#...#", "#...#", ".###."),
    "9": (".###.", "#...#", "#...#", "#...#", ".####", "....#", "....#", "...#.", ".##.."),
}
_GLYPH_HEIGHT = 9


def _render_digits(digits: str, count: int, size: tuple[int, int], what: str) -> bytes:
    if len(digits) != count or not (digits.isascii() and digits.isdigit()):
        raise ValueError(f"{what} must be {count} ASCII digits, got {digits!r}")
    width, height = size
    image = Image.new("1", size, 1)
    left = (width - count * _DIGIT_CELL) // 2
    top = (height - _GLYPH_HEIGHT) // 2
    for position, digit in enumerate(digits):
        image.paste(_glyph(digit), (left + position * _DIGIT_CELL, top))
    return _png(image)


@functools.cache
def _glyph(digit: str) -> Image.Image:
    """One digit's bitmap as a 1-bit image (ink 0 on 1), drawn once per process."""
    pattern = _DIGIT_GLYPHS[digit]
    glyph = Image.new("1", (len(pattern[0]), len(pattern)), 1)
    for row, cells in enumerate(pattern):
        for column, cell in enumerate(cells):
            if cell == "#":
                glyph.putpixel((column, row), 0)
    return glyph


def render_my_number_png(number: str) -> bytes:
    """個人番号 image (券面AP EF ``0005`` DF41): 12 digits, 72×12, 1-bit PNG."""
    return _render_digits(number, 12, MY_NUMBER_IMAGE_SIZE, "個人番号")


def render_security_code_png(code: str) -> bytes:
    """セキュリティコード image (券面AP EF ``0002`` DF2A): 4 digits, 24×12, 1-bit PNG."""
    return _render_digits(code, 4, SECURITY_CODE_IMAGE_SIZE, "セキュリティコード")


# --- photo ----------------------------------------------------------------------------------

PHOTO_COMPRESSION_RATE = 40
"""JPEG 2000 compression ratio for the placeholder photo (300×400 → about 3 KB)."""

_JP2_SIGNATURE = bytes.fromhex("0000000C 6A502020 0D0A870A")


def placeholder_photo_jp2(seed: str, size: tuple[int, int] = PHOTO_SIZE) -> bytes:
    """A made-up greyscale portrait (gradient, head and shoulders) as JP2, a few KB.

    Deterministic: the shades and proportions come from SHA-256 of ``seed`` (e.g. the persona's
    name), so different personas get visibly different placeholders.
    """
    width, height = size
    if not (32 <= width <= 2000 and 32 <= height <= 2000):
        raise ValueError(f"photo size must be 32..2000 px per side, got {width}x{height}")
    noise = hashlib.sha256(seed.encode("utf-8")).digest()
    light = 220 + noise[0] % 30  # background, top
    dark = 175 + noise[1] % 30  # background, bottom
    body = 40 + noise[2] % 50  # clothes
    skin = 130 + noise[3] % 40  # face
    hair = 10 + noise[4] % 40
    head_w = width * (0.34 + noise[5] % 8 / 100)
    head_h = head_w * (1.22 + noise[6] % 10 / 100)
    centre_x = width / 2 + (noise[7] % 9 - 4) * width / 200
    head_top = height * (0.16 + noise[8] % 6 / 100)

    # the background: one shade per row, from light at the top to dark at the bottom
    shades = bytes(light + (dark - light) * y // max(height - 1, 1) for y in range(height))
    image = Image.frombytes("L", size, b"".join(bytes([shade]) * width for shade in shades))
    draw = ImageDraw.Draw(image)
    shoulders_top = head_top + head_h * 0.95
    draw.ellipse(
        [centre_x - width * 0.48, shoulders_top, centre_x + width * 0.48, height * 1.5], fill=body
    )
    draw.rectangle(
        [centre_x - head_w * 0.2, head_top + head_h * 0.7, centre_x + head_w * 0.2, shoulders_top],
        fill=skin,
    )
    draw.ellipse(
        [
            centre_x - head_w * 0.58,
            head_top - head_h * 0.06,
            centre_x + head_w * 0.58,
            head_top + head_h * 0.8,
        ],
        fill=hair,
    )
    draw.ellipse(
        [centre_x - head_w / 2, head_top + head_h * 0.08, centre_x + head_w / 2, head_top + head_h],
        fill=skin,
    )
    # Registering the JPEG 2000 writer ourselves keeps PIL from importing all of its ~40 format
    # plugins (Image.init(), ~80 ms) at the first save in a format it does not preload.
    from PIL import Jpeg2KImagePlugin  # noqa: F401, PLC0415

    buffer = io.BytesIO()
    image.save(
        buffer,
        "JPEG2000",
        no_jp2=False,
        irreversible=True,
        quality_mode="rates",
        quality_layers=[PHOTO_COMPRESSION_RATE],
    )
    return buffer.getvalue()


# --- persona-supplied files -----------------------------------------------------------------


class ImageKind(StrEnum):
    """Which card-face picture a file is for (decides the required format and mode)."""

    NAME = "name"
    ADDRESS = "address"
    MY_NUMBER = "my_number"
    SECURITY_CODE = "security_code"
    PHOTO = "photo"


def load_image_file(path: str | Path, kind: ImageKind | str) -> bytes:
    """Read a persona's image file, check it, return its bytes unchanged.

    Text kinds (name, address, my_number, security_code) must be PNG, mode ``"1"``; the photo
    must be JPEG 2000 in a JP2 container, greyscale (mode ``"L"``). Every file must decode, be
    at most :data:`MAX_IMAGE_BYTES` bytes and :data:`MAX_IMAGE_PIXELS` pixels. Any problem
    (including an unreadable file) raises :class:`ValueError`.
    """
    try:
        image_kind = ImageKind(kind)
    except ValueError:
        choices = ", ".join(item.value for item in ImageKind)
        raise ValueError(f"unknown image kind {kind!r} (one of {choices})") from None
    file = Path(path)
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise ValueError(f"{image_kind} image {file}: cannot read: {exc.strerror or exc}") from exc
    if len(data) > MAX_IMAGE_BYTES:
        raise ValueError(
            f"{image_kind} image {file}: {len(data)} bytes, more than {MAX_IMAGE_BYTES} "
            "fit in the card-face file"
        )
    if image_kind is ImageKind.PHOTO:
        expected_format, expected_mode = "JPEG2000", "L"
        wanted = "a greyscale JPEG 2000 (.jp2)"
    else:
        expected_format, expected_mode = "PNG", "1"
        wanted = "a 1-bit PNG"
    try:
        with Image.open(io.BytesIO(data)) as image:
            actual_format, mode, (width, height) = image.format, image.mode, image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise ValueError(f"{width}x{height} is more than {MAX_IMAGE_PIXELS} pixels")
            image.load()
    except ValueError as exc:
        raise ValueError(f"{image_kind} image {file}: {exc}") from exc
    except Exception as exc:  # Pillow raises many types (OSError, SyntaxError, ...) on bad data
        raise ValueError(f"{image_kind} image {file}: not a decodable image ({exc})") from exc
    if actual_format != expected_format:
        raise ValueError(f"{image_kind} image {file}: is {actual_format}, must be {wanted}")
    if image_kind is ImageKind.PHOTO and not data.startswith(_JP2_SIGNATURE):
        raise ValueError(
            f"{image_kind} image {file}: a bare JPEG 2000 codestream, must be in a JP2 container"
        )
    if mode != expected_mode:
        raise ValueError(f"{image_kind} image {file}: mode {mode!r}, must be {wanted}")
    return data
