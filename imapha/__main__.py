"""``python -m imapha`` is the ``imapha`` command."""

import sys

from imapha.cli import main

sys.exit(main())
