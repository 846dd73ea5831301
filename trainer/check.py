"""`python -m trainer.check ARGS`: the trainer's input checks for ARGS, in one process.

torchrun adds its own failure block to a group whose processes exit with an error; running the
checks first keeps a wrong input to the trainer's one line (`make train` does), and fetches
`--init imagenet` once instead of once per process.
"""

import sys

from classifier.config import parse
from foundation.cli import stage_main
from trainer.train import check_inputs


@stage_main
def main(argv: list[str] | None = None) -> int:
    check_inputs(parse(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
