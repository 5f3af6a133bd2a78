"""Command handlers, one module per command family. Each is ``handler(chip, cmd) -> bytes``."""
