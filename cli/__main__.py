"""``python -m landscape.cli`` (used with torchrun)."""

import sys

from .main import main

sys.exit(main())
