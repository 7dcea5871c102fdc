"""``python -m tessera``: the command line."""

import sys

from tessera.engine.cli import main

sys.exit(main())
