"""Runnable examples: the AetherTerm-like demo backend and a scripted demo client."""
