"""python -m simulator: the same as the `simulate` command."""

import sys

from .cli import main

sys.exit(main())
