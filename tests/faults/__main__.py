"""Print the corpus figures: ``python -m tests.faults`` (see score.py for what they mean)."""

import sys

from .score import main

sys.exit(main(sys.argv[1:]))
