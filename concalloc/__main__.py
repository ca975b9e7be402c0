"""`python -m concalloc`: the concalloc command."""

import sys

from .cli import main

sys.exit(main())
