"""The personas of a ``mynacard issue`` batch, derived from one base persona.

Deterministically from a seed: a distinct valid 個人番号 (check digit per the statutory mod-11
rule), a distinct 氏名 (family × given name, drawn without repetition while combinations last:
:data:`NAME_CAPACITY`), sex to match the given name, an adult birth date (:data:`ADULT_AGES`),
the card's expiry on the 10th birthday after issuance, a distinct 製造番号 and 住民票コード, a
セキュリティコード, the ローマ字氏名 when the base has one (a next-generation card's face:
:mod:`harness.issuance.romaji`), and the label ``<prefix>-<n>``. Everything else (address,
municipality, PINs, dates of issue, certificate settings, counters, policy, access overrides,
a photo file, the card generation) is the base's. Image files the base names for the name,
address, 個人番号 or セキュリティコード are dropped (they would show the base's values; those
images are rendered from each card's own data); the others become absolute paths.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from apdu.errors import MynacardError
from card_emulator import mynumber
from harness.issuance.romaji import romanized
from harness.personas import to_toml
from jpki.profile import birthday_in, nth_birthday_after

__all__ = [
    "ADULT_AGES",
    "CARD_BIRTHDAYS",
    "FAMILY_NAMES",
    "FEMALE_NAMES",
    "MALE_NAMES",
    "NAME_CAPACITY",
    "IssueError",
    "adult_birth_dates",
    "card_expiry",
    "derive_personas",
    "persona_text",
]

# 氏名: common family names and given names (by the sex they are usually given to).
_FAMILY = (
    "佐藤 鈴木 高橋 田中 伊藤 渡辺 山本 中村 小林 加藤 吉田 山田 佐々木 山口 松本 井上 木村 林 "
    "斎藤 清水 山崎 森 池田 橋本 阿部 石川 山下 中島 石井 小川 前田 岡田 長谷川 藤田 後藤 近藤 "
    "村上 遠藤 青木 坂本 斉藤 福田 太田 西村 藤井 金子 岡本 藤原 中野 三浦 原田 松田 竹内 中川 "
    "小野 田村 和田 石田 森田 上田"
)
_MALE = (
    "太郎 一郎 健太 翔太 大輔 拓也 直樹 浩二 誠 学 悠斗 陽翔 蓮 大翔 湊 悠真 颯太 健一 和也 "
    "達也 智也 雄一 隆 修 博 哲也 亮 剛 聡 秀樹 勇気 海斗 大和 陸 樹 蒼 律 翼 航 慎一"
)
_FEMALE = (
    "花子 陽子 恵子 直子 美穂 由美 裕子 明美 智子 幸子 結衣 陽菜 美咲 さくら 葵 凛 芽依 結菜 "
    "真由美 久美子 愛 彩 舞 香織 麻衣 千尋 美香 優子 奈々 沙織 杏 紬 澪 楓 莉子 美月 遥 七海 "
    "紗希 琴音"
)
FAMILY_NAMES = tuple(_FAMILY.split())
MALE_NAMES = tuple(_MALE.split())
FEMALE_NAMES = tuple(_FEMALE.split())
NAME_CAPACITY = len(FAMILY_NAMES) * (len(MALE_NAMES) + len(FEMALE_NAMES))
"""How many distinct 氏名 the lists give; beyond that names repeat (other fields never do)."""

ADULT_AGES = (20, 80)
"""Holders are this old (years, inclusive range) on the card's issue date."""

CARD_BIRTHDAYS = 10
"""An adult's card expires on this birthday after its issue date."""

_GIVEN_NAMES = {1: MALE_NAMES, 2: FEMALE_NAMES}
_DERIVED_IMAGE_KINDS = ("name", "address", "my_number", "security_code")


class IssueError(MynacardError, ValueError):
    """Bad arguments, a bad base persona or output directory, or a card that could not be made."""


def card_expiry(issued: dt.date, birth: dt.date) -> dt.date:
    """An adult's card expires on the 10th birthday after its issue date.

    (発行日後10回目の誕生日; a 29 February birthday falls on 28 February in common years.)
    """
    return nth_birthday_after(issued, birth, CARD_BIRTHDAYS)


def adult_birth_dates(issued: dt.date) -> tuple[dt.date, dt.date]:
    """The earliest and latest birth dates of a holder :data:`ADULT_AGES` old on ``issued``."""
    youngest = birthday_in(issued.year - ADULT_AGES[0], issued)
    oldest = birthday_in(issued.year - ADULT_AGES[1] - 1, issued) + dt.timedelta(days=1)
    return oldest, youngest


class _Unique:
    """Draws values from ``make`` until one not drawn before comes up."""

    def __init__(self, make: Callable[[], str], taken: Sequence[str] = ()) -> None:
        self._make = make
        self._seen = set(taken)

    def __call__(self) -> str:
        while True:
            value = self._make()
            if value not in self._seen:
                self._seen.add(value)
                return value


def _digits(rng: random.Random, n: int, first: str = "123456789") -> str:
    return rng.choice(first) + "".join(rng.choice("0123456789") for _ in range(n - 1))


def _my_number(rng: random.Random) -> str:
    first_eleven = _digits(rng, 11)
    return first_eleven + str(mynumber.check_digit(first_eleven))


class _Holders:
    """A batch's distinct 個人番号, 製造番号, 住民票コード and 氏名, drawn from ``rng``."""

    def __init__(
        self, rng: random.Random, holder: Mapping[str, Any], card: Mapping[str, Any]
    ) -> None:
        self.rng = rng
        self.my_numbers = _Unique(lambda: _my_number(rng), [str(holder.get("my_number", ""))])
        self.serials = _Unique(lambda: _digits(rng, 15, "4"), [str(card.get("serial", ""))])
        self.resident_codes = _Unique(
            lambda: _digits(rng, 11, "0123456789"), [str(holder.get("resident_code", ""))]
        )
        self.names: dict[int, set[tuple[str, str]]] = {1: set(), 2: set()}

    def name(self, sex: int) -> tuple[str, str]:
        """A (family, given) name not drawn before for ``sex`` while combinations last."""
        used = self.names[sex]
        capacity = len(FAMILY_NAMES) * len(_GIVEN_NAMES[sex])
        while True:
            name = (self.rng.choice(FAMILY_NAMES), self.rng.choice(_GIVEN_NAMES[sex]))
            if name not in used or len(used) >= capacity:
                break
        used.add(name)
        return name


def _images(base: Mapping[str, Any], base_dir: Path) -> dict[str, str]:
    return {
        kind: str((base_dir / str(path)).resolve())
        for kind, path in base.get("images", {}).items()
        if kind not in _DERIVED_IMAGE_KINDS
    }


def derive_personas(
    base: Mapping[str, Any], count: int, *, seed: int, prefix: str, base_dir: Path
) -> Iterator[tuple[str, dict[str, Any]]]:
    """``count`` (label, persona tables) pairs derived from the ``base`` tables (see module doc).

    Deterministic for a given ``base``, ``seed`` and ``prefix``; image paths the base gives
    relative to its directory ``base_dir`` become absolute.
    """
    rng = random.Random(seed)  # test data, reproducible on purpose
    holder = base.get("holder", {})
    card = base.get("card", {})
    issued = card.get("issued")
    if not isinstance(issued, dt.date):
        raise IssueError("the base persona has no card.issued date")
    draws = _Holders(rng, holder, card)
    oldest, youngest = adult_birth_dates(issued)
    span = (youngest - oldest).days
    images = _images(base, base_dir)
    width = max(4, len(str(count)))
    for number in range(1, count + 1):
        sex = rng.choice((1, 2))
        name = draws.name(sex)
        birth = oldest + dt.timedelta(days=rng.randrange(span + 1))
        label = f"{prefix}-{number:0{width}d}"
        tables = {
            **{k: v for k, v in base.items() if k != "images"},
            "label": label,
            "holder": {
                **holder,
                **({"romanized_name": romanized(*name)} if "romanized_name" in holder else {}),
                "name": "\u3000".join(name),
                "birth_date": birth,
                "sex": sex,
                "my_number": draws.my_numbers(),
                "resident_code": draws.resident_codes(),
            },
            "card": {
                **card,
                "expiry": card_expiry(issued, birth),
                "security_code": f"{rng.randrange(10_000):04d}",
                "serial": draws.serials(),
            },
        }
        if images:
            tables["images"] = images
        yield label, tables


def persona_text(tables: Mapping[str, Any], *, base: Path, seed: int) -> bytes:
    """The persona file of one issued card (its digest is recorded in the card image)."""
    header = f"# Issued by `mynacard issue` from {base} (seed {seed}).\n"
    try:
        return (header + to_toml(tables)).encode("utf-8")
    except TypeError as exc:
        raise IssueError(f"{base}: cannot derive personas from this persona ({exc})") from None
