"""``mynacard fleet``: one process serving a card to every kiosk named in a fleet TOML file."""
