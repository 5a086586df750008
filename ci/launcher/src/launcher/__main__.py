"""python -m launcher ... (the same as the connect-health-stack console script)."""

import sys

from .cli import main

sys.exit(main())
