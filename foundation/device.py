"""Moved to foundation.runtime, the one owner of the device and the precision; this name stays
only until pipeline/run.py imports from there (then remove it)."""

from foundation.runtime import DEVICES, resolve_device  # noqa: F401
