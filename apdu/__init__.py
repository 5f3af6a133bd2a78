"""apdu."""
