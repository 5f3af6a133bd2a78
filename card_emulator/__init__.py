"""card_emulator."""
