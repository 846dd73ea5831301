"""`python -m trainer.check ARGS`: the trainer's input checks for ARGS, in one process.

torchrun adds its own failure block to a group whose processes exit with an error; running the
checks first keeps a wrong input to the trainer's one line (`make train` does), and fetches
`--init imagenet` once instead of once per process.
"""

import sys

from trainer.config import parse
from trainer.train import check_inputs


def main(argv: list[str] | None = None) -> int:
    try:
        check_inputs(parse(argv))
    except (OSError, ValueError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
