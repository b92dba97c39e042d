"""`python -m streamer ...` is the `streamer` command (see streamer/cli.py)."""

import sys

from streamer.cli import main

sys.exit(main())
