"""``python -m gear`` = the ``gear`` command."""
import sys

from gear.cli import main

sys.exit(main())
