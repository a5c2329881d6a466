"""``python -m search``: the same CLI as the ``medtune`` console script."""

import sys

from search.cli import main

sys.exit(main())
