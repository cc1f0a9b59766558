"""``python -m aiservice`` = the ``aiservice`` command."""

import sys

from .cli import main

sys.exit(main())
