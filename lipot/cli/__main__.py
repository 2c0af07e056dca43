"""``python -m lipot.cli`` (and ``torchrun ... -m lipot.cli``): the ``lipot`` command."""

import sys

from . import main

sys.exit(main())
