"""Harness code shared by the end-to-end tests (readers, expected-result model)."""
