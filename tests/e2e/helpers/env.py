"""Where the binaries are (SLUICE_BIN) and how long the tests wait (SLUICE_SANITIZED widens it)."""
from __future__ import annotations

import os
from pathlib import Path


REPO = Path(__file__).resolve().parents[3]
BIN_DIR = Path(os.environ.get("SLUICE_BIN") or (REPO / "build" / "bin"))
SANITIZED = bool(os.environ.get("SLUICE_SANITIZED")) or "asan" in str(BIN_DIR)
# Multiplier for "it happens within X seconds" windows (never for "not before").
SLACK = 2.5 if SANITIZED else 1.0

PORT_FILE_TIMEOUT = 15.0
IO_TIMEOUT = 8.0
