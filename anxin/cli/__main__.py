"""`python -m anxin.cli`: the `anxin` command."""

import sys

from anxin.cli import main

sys.exit(main())
