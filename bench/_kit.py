"""Lets a benchmark, run as `python bench/NAME.py`, import the test kit (`tests/testkit`)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
