"""``python3 -m ocpizza_backup``: the command line."""

import sys

from ocpizza_backup.cli import main

sys.exit(main())
