"""Builders of each application's content at personalization, one module per AP."""
