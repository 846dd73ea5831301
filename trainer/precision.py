"""Moved to foundation.runtime, the one owner of the device and the precision; this name stays
only until pipeline/run.py imports from there (then remove it)."""

from foundation.runtime import PRECISIONS, machine  # noqa: F401
from foundation.runtime import resolve_precision as resolve  # noqa: F401
