"""Reasons the station itself gives a spoiled attempt, beside the printer's and the chip's own."""

from __future__ import annotations

# The card in the printer when the agent died: nobody can say it is good, so it is spoiled.
INTERRUPTED = "interrupted"
