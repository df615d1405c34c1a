"""Test doubles of external services (OpenObserve)."""
