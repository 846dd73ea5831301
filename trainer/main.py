"""`torchrun --nproc_per_node=N trainer/main.py --domain {original,decoded,latent} ...`"""

import sys

from trainer.train import main

if __name__ == "__main__":
    sys.exit(main())
