"""`python -m pipelines ...`: the same as the `splade` command."""
import sys

from pipelines.cli import main

sys.exit(main())
