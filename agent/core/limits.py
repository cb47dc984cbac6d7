"""What a job may carry at most (config `[limits]`), known to the configuration and to the job parser."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class JobLimits:
    """Upper bounds on what a job may carry (config `[limits]`): a hostile job cannot exhaust the station."""

    max_image_bytes: int = 4 * 1024 * 1024
    max_chip_file_bytes: int = 64 * 1024


DEFAULT_LIMITS = JobLimits()
