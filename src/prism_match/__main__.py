"""``python -m prism_match``: the same command line as ``prism-match``."""

import sys

from .cli import main

sys.exit(main())
