"""Helpers for the end-to-end tests, one module per responsibility; conftest.py
re-exports them, so tests import from conftest."""
