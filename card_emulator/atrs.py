"""TEMPORARY re-export: the ATRs now live in :mod:`apdu.vocabulary`."""

from apdu.vocabulary import DEFAULT_ATR, KNOWN_ATRS, resolve_atr

__all__ = ["DEFAULT_ATR", "KNOWN_ATRS", "resolve_atr"]
