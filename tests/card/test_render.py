"""Card-face images for the 券面 APs (card-facts §7.1, §7.2)."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PIL import Image

from card_emulator import render
from card_emulator.render import (
    ADDRESS_IMAGE_SIZE,
    NAME_IMAGE_SIZE,
    ImageKind,
    find_cjk_font,
    load_image_file,
    placeholder_photo_jp2,
    render_address_png,
    render_my_number_png,
    render_name_png,
    render_security_code_png,
    render_text_png,
)

DEMO_NAME = "番号　花子"
DEMO_ADDRESS = "東京都千代田区霞が関二丁目１番２号"
LONG_ADDRESS = (
    "北海道札幌市中央区北一条西二丁目一番地の三　札幌グランドパレスマンション東棟"
    "一二〇四号室　山田太郎様方　別棟二階奥の一室"
)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JP2_SIGNATURE = bytes.fromhex("0000000C 6A502020 0D0A870A")


def _open(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def _ink_box(data: bytes) -> tuple[int, int, int, int]:
    """Bounding box of the black pixels."""
    image = _open(data).convert("L")
    box = Image.eval(image, lambda grey: 255 - grey).getbbox()
    assert box is not None, "image has no ink"
    return box


def _ink_rows(data: bytes) -> list[int]:
    """Per pixel row, the number of black pixels."""
    image = _open(data).convert("L")
    width, height = image.size
    pixels = image.load()
    assert pixels is not None
    return [sum(1 for x in range(width) if pixels[x, y] == 0) for y in range(height)]


def _bands(data: bytes) -> list[int]:
    """Heights of the runs of inked rows separated by blank rows (one run per text line)."""
    heights: list[int] = []
    inside = False
    for count in _ink_rows(data):
        if count and not inside:
            heights.append(0)
        if count:
            heights[-1] += 1
        inside = bool(count)
    return heights


def _text_lines(data: bytes) -> int:
    return len(_bands(data))


@pytest.fixture
def no_font(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Pretend no CJK font is installed (known paths gone, fc-match finds nothing)."""
    monkeypatch.setattr(render, "KNOWN_FONT_PATHS", (Path("/nonexistent/NotoSansCJK.ttc"),))
    monkeypatch.setattr(render, "_fc_match", lambda: None)
    find_cjk_font.cache_clear()
    yield
    find_cjk_font.cache_clear()


# --- fonts ------------------------------------------------------------------------------------


def test_font_is_noto_sans_cjk_jp() -> None:
    face = find_cjk_font()
    font = render._font(face, 20)
    assert font.getname()[0] == "Noto Sans CJK JP"


def test_font_found_through_fc_match(monkeypatch: pytest.MonkeyPatch) -> None:
    real = find_cjk_font()
    monkeypatch.setattr(render, "KNOWN_FONT_PATHS", (Path("/nonexistent/NotoSansCJK.ttc"),))
    monkeypatch.setattr(render, "_fc_match", lambda: real.path)
    find_cjk_font.cache_clear()
    try:
        assert find_cjk_font() == real
    finally:
        find_cjk_font.cache_clear()


def test_missing_font_names_the_debian_package(no_font: None) -> None:
    with pytest.raises(RuntimeError, match="fonts-noto-cjk"):
        render_text_png(DEMO_NAME, width=400, height=64)
    with pytest.raises(RuntimeError, match="Noto Sans CJK JP"):
        find_cjk_font()


def test_fc_match_fallback_that_is_not_cjk_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(render, "KNOWN_FONT_PATHS", ())
    monkeypatch.setattr(render, "_fc_match", lambda: Path(__file__))  # not a font at all
    find_cjk_font.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="fonts-noto-cjk"):
            find_cjk_font()
    finally:
        find_cjk_font.cache_clear()


# --- text images ------------------------------------------------------------------------------


def test_name_image_format() -> None:
    data = render_name_png(DEMO_NAME)
    assert data.startswith(PNG_SIGNATURE)
    image = _open(data)
    assert (image.format, image.mode, image.size) == ("PNG", "1", NAME_IMAGE_SIZE)
    assert _text_lines(data) == 1


def test_address_image_format() -> None:
    data = render_address_png(DEMO_ADDRESS)
    image = _open(data)
    assert (image.format, image.mode, image.size) == ("PNG", "1", ADDRESS_IMAGE_SIZE)


def test_text_image_is_black_on_white_and_inside_padding() -> None:
    data = render_name_png(DEMO_NAME)
    left, top, right, bottom = _ink_box(data)
    width, height = NAME_IMAGE_SIZE
    assert _open(data).getpixel((0, 0)) == 255  # white background
    assert left >= 2 and top >= 2 and right <= width - 2 and bottom <= height - 2
    assert bottom - top >= 24  # a large, legible single line


def test_rendering_is_deterministic() -> None:
    assert render_name_png(DEMO_NAME) == render_name_png(DEMO_NAME)
    assert render_address_png(LONG_ADDRESS) == render_address_png(LONG_ADDRESS)
    assert render_name_png(DEMO_NAME) != render_name_png("番号　太郎")


def test_sixty_character_address_wraps_and_fits() -> None:
    assert len(LONG_ADDRESS) == 60
    data = render_address_png(LONG_ADDRESS)
    image = _open(data)
    assert image.size == ADDRESS_IMAGE_SIZE
    lines = _text_lines(data)
    assert 2 <= lines <= 5
    left, top, right, bottom = _ink_box(data)
    width, height = ADDRESS_IMAGE_SIZE
    assert left >= 1 and top >= 1 and right <= width - 1 and bottom <= height - 1


def test_two_hundred_characters_still_fit() -> None:
    text = (LONG_ADDRESS * 4)[:200]
    data = render_address_png(text)
    assert _open(data).size == ADDRESS_IMAGE_SIZE
    assert _text_lines(data) <= 5


def test_font_shrinks_for_longer_text() -> None:
    short = _bands(render_address_png(DEMO_ADDRESS))
    long = _bands(render_address_png(LONG_ADDRESS))
    longest = _bands(render_address_png((LONG_ADDRESS * 4)[:200]))
    assert len(short) == 1
    assert 1 < len(long) <= len(longest)
    assert short[0] > max(long) > max(longest) >= 14


def test_wrap_applies_kinsoku() -> None:
    font = render._font(find_cjk_font(), 40)
    width = int(font.getlength("あいうえ"))
    assert render._wrap("あいうえ。かき", font, width) == ["あいう", "え。かき"]
    assert render._wrap("あいう「えお", font, width) == ["あいう", "「えお"]
    assert render._wrap("あいうえ　かき", font, width) == ["あいうえ", "かき"]
    assert render._wrap("あい\nうえ", font, width) == ["あい", "うえ"]


def test_explicit_newline_breaks() -> None:
    data = render_text_png("番号\n花子", width=400, height=128, max_lines=2)
    assert _text_lines(data) == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "empty"), ("　 ", "empty"), ("番号\x00花子", "control"), ("a\tb", "control")],
)
def test_bad_text_is_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        render_text_png(text, width=400, height=64)


def test_text_that_cannot_fit_is_refused() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        render_text_png("長" * 300, width=400, height=64, max_lines=2)
    with pytest.raises(ValueError, match="too small"):
        render_text_png(DEMO_NAME, width=10, height=10)
    with pytest.raises(ValueError, match="max_lines"):
        render_text_png(DEMO_NAME, width=400, height=64, max_lines=0)


# --- digit images -----------------------------------------------------------------------------


def test_my_number_image() -> None:
    data = render_my_number_png("314159265352")
    image = _open(data)
    assert (image.format, image.mode, image.size) == ("PNG", "1", (72, 12))
    left, _, right, _ = _ink_box(data)
    assert left == 0 and right >= 70  # twelve 6-px cells fill the width
    assert render_my_number_png("314159265352") == data
    assert render_my_number_png("314159265353") != data


def test_security_code_image() -> None:
    data = render_security_code_png("2285")
    image = _open(data)
    assert (image.format, image.mode, image.size) == ("PNG", "1", (24, 12))
    assert render_security_code_png("2285") == data


def test_every_digit_glyph_differs() -> None:
    glyphs = {tuple(render._DIGIT_GLYPHS[digit]) for digit in "0123456789"}
    assert len(glyphs) == 10
    assert all(len(row) == 5 for glyph in glyphs for row in glyph)


@pytest.mark.parametrize("number", ["31415926535", "3141592653521", "31415926535X", "３１４"])
def test_my_number_must_be_twelve_digits(number: str) -> None:
    with pytest.raises(ValueError, match="12 ASCII digits"):
        render_my_number_png(number)


@pytest.mark.parametrize("code", ["228", "22855", "22a5", "２２８５"])
def test_security_code_must_be_four_digits(code: str) -> None:
    with pytest.raises(ValueError, match="4 ASCII digits"):
        render_security_code_png(code)


# --- photo ------------------------------------------------------------------------------------


def test_placeholder_photo_is_small_greyscale_jp2() -> None:
    data = placeholder_photo_jp2(DEMO_NAME)
    assert data.startswith(JP2_SIGNATURE)
    assert len(data) < 20_000
    image = _open(data)
    assert (image.format, image.mode, image.size) == ("JPEG2000", "L", (300, 400))


def test_placeholder_photo_is_deterministic_per_seed() -> None:
    first = placeholder_photo_jp2(DEMO_NAME)
    assert placeholder_photo_jp2(DEMO_NAME) == first
    assert placeholder_photo_jp2("番号　太郎") != first


def test_placeholder_photo_other_size() -> None:
    image = _open(placeholder_photo_jp2("x", (120, 160)))
    assert image.size == (120, 160)
    with pytest.raises(ValueError, match="photo size"):
        placeholder_photo_jp2("x", (10, 4000))


# --- persona files ----------------------------------------------------------------------------


def test_load_text_and_photo_files(tmp_path: Path) -> None:
    name = tmp_path / "name.png"
    name.write_bytes(render_name_png(DEMO_NAME))
    photo = tmp_path / "photo.jp2"
    photo.write_bytes(placeholder_photo_jp2(DEMO_NAME))
    assert load_image_file(name, ImageKind.NAME) == name.read_bytes()
    assert load_image_file(str(name), "address") == name.read_bytes()
    assert load_image_file(photo, "photo") == photo.read_bytes()


def _save(path: Path, image: Image.Image, fmt: str, **options: object) -> Path:
    image.save(path, fmt, **options)
    return path


@pytest.mark.parametrize(
    ("make", "kind", "message"),
    [
        (lambda p: _save(p / "a.png", Image.new("L", (40, 12), 255), "PNG"), "name", "mode 'L'"),
        (lambda p: _save(p / "a.bmp", Image.new("1", (40, 12), 1), "BMP"), "name", "is BMP"),
        (
            lambda p: _save(p / "a.png", Image.new("L", (40, 40), 128), "PNG"),
            "photo",
            "is PNG, must be a greyscale JPEG 2000",
        ),
        (
            lambda p: _save(p / "a.jp2", Image.new("RGB", (40, 40)), "JPEG2000", no_jp2=False),
            "photo",
            "mode 'RGB'",
        ),
        (
            lambda p: _save(p / "a.j2k", Image.new("L", (40, 40)), "JPEG2000", no_jp2=True),
            "photo",
            "JP2 container",
        ),
        (
            lambda p: _save(p / "a.jp2", Image.new("L", (40, 40)), "JPEG2000", no_jp2=False),
            "security_code",
            "is JPEG2000, must be a 1-bit PNG",
        ),
    ],
)
def test_load_refuses_wrong_format_or_mode(
    tmp_path: Path, make: Callable[[Path], Path], kind: str, message: str
) -> None:
    path = make(tmp_path)
    with pytest.raises(ValueError, match=message):
        load_image_file(path, kind)


def test_load_refuses_junk(tmp_path: Path) -> None:
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image at all")
    with pytest.raises(ValueError, match="not a decodable image"):
        load_image_file(junk, "name")
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(render_address_png(LONG_ADDRESS)[:200])
    with pytest.raises(ValueError, match="not a decodable image"):
        load_image_file(truncated, "address")


def test_load_refuses_missing_big_and_unknown(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read"):
        load_image_file(tmp_path / "absent.png", "name")
    big = tmp_path / "big.png"
    big.write_bytes(b"\x00" * 70_000)
    with pytest.raises(ValueError, match="more than 65535"):
        load_image_file(big, "name")
    with pytest.raises(ValueError, match="unknown image kind 'face'"):
        load_image_file(big, "face")


def test_load_refuses_too_many_pixels(tmp_path: Path) -> None:
    path = _save(tmp_path / "huge.png", Image.new("1", (4000, 2000), 1), "PNG", optimize=True)
    assert path.stat().st_size < 65_535
    with pytest.raises(ValueError, match="more than 4000000 pixels"):
        load_image_file(path, "address")
