"""`ray submit cluster/config.yaml prep/main.py -- <python -m prep options>`: the prep CLI as a
script, for tools that run a file rather than a module (`python prep/main.py --help`)."""

import sys

from prep.cli import main

if __name__ == "__main__":
    sys.exit(main())
