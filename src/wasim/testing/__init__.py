"""Helpers for driving a real Baileys client against wasim (tests, benchmarks, demos)."""
