"""Every command's way out: the errors a user can fix are one line and exit 2.

Each stage's `main(argv) -> int` is wrapped by stage_main, the one place that decides what an
expected error is: OSError (files, storage, object stores), ValueError (bad input, named with
what to do) and RuntimeError (a step that failed, named with how to resume). Under torchrun
only rank 0 prints, so a group says it once. CDMR_TRACEBACK=1 raises instead, for the
traceback.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable

EXPECTED = (OSError, ValueError, RuntimeError)
TRACEBACK_ENV = "CDMR_TRACEBACK"


def stage_main(run: Callable[..., int | None]) -> Callable[..., int]:
    """`run(argv)` as a console entry point: its exit code, or 2 and one line on an expected
    error."""
    @functools.wraps(run)
    def main(argv: list[str] | None = None) -> int:
        try:
            return run(argv) or 0
        except EXPECTED as err:
            if os.environ.get(TRACEBACK_ENV) == "1":
                raise
            if int(os.environ.get("RANK", 0)) == 0:
                print(f"error: {err}", file=sys.stderr)
            return 2
    return main
