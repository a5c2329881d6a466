"""``python -m medtune``: the same CLI as the ``medtune`` console script."""

import sys

from medtune.cli import main

sys.exit(main())
