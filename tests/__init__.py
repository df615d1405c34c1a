"""Test suite (a package so test helpers such as ``tests.doubles`` import by name)."""
