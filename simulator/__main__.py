"""python -m simulator: the same as the `simulate` command."""

import sys

from ._entry import main

sys.exit(main())
