"""``python -m worklist``: the same as the ``worklist`` console script."""

from worklist.cli import main

main()
