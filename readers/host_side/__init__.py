"""The host side: how a program talks to a card (transports, client, application readers)."""
