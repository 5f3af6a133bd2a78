"""Tests of ``mynacard fleet``."""
