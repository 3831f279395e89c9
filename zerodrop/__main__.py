"""``python -m zerodrop``: the ``zerodrop`` command."""
import sys

from zerodrop.cli import main

sys.exit(main())
