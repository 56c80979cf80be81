"""``python -m meio.cli``: the ``meio`` command."""

import sys

from meio.cli import main

sys.exit(main())
