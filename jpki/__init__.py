"""jpki."""
