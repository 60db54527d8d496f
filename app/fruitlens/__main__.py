"""Entry file for `python -m fruitlens` and for spark-submit (the image copies it to main.py)."""

import sys

from fruitlens.cli import main

if __name__ == "__main__":
    sys.exit(main())
