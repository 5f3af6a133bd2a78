"""Fault injection: scenarios as data (:mod:`.scenario`), the card that applies them
(:mod:`.card`) and the seeded APDU mutator of the storms (:mod:`.apdu_storm`)."""

from harness.faults.card import CardRemovedError, FaultyCard, traced
from harness.faults.scenario import KINDS, Fault, Pattern, Scenario, ScenarioError

__all__ = [
    "KINDS",
    "CardRemovedError",
    "Fault",
    "FaultyCard",
    "Pattern",
    "Scenario",
    "ScenarioError",
    "traced",
]
