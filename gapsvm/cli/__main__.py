"""``python -m gapsvm.cli``: the ``gapsvm`` command."""

import sys

from gapsvm.cli.main import main

sys.exit(main())
