"""APDU traces: naming commands as the spec does, the one trace format (written and read), and
replay against a card."""
