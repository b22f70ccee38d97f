"""`python -m rcforge.cli`: the `rcforge` command without its console script."""

import sys

from rcforge.cli.main import main

sys.exit(main())
