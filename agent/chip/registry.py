"""The chip profiles this station knows, by name: the configuration checks names against
`PROFILES` without loading the PC/SC driver; `load_profile` builds one."""

from __future__ import annotations

from pathlib import Path

from agent.chip.profile import ChipProfile

PROFILES = ("icao9303",)


def load_profile(name: str, trust_anchor_paths: list[Path]) -> ChipProfile:
    """The profile called `name`, trusting the CSCA certificates in `trust_anchor_paths` (PEM or DER).

    Raises ValueError for an unknown profile name or an unreadable trust anchor file.
    """
    if name == "icao9303":
        # Imported here: checking a configuration needs the names, not the PC/SC driver.
        from agent.chip.icao9303 import Icao9303Profile
        from agent.chip.passive_auth import TrustAnchors

        return Icao9303Profile(TrustAnchors.load(trust_anchor_paths))
    raise ValueError(f"unknown chip profile {name!r}: known profiles are {', '.join(PROFILES)}")
