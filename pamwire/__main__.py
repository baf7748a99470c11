"""Allow `python -m pamwire`."""

import sys

from pamwire.cli import main

sys.exit(main())
