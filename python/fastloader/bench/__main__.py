"""`python -m fastloader.bench`: see `fastloader.bench.main_job` for the sections and options."""

import sys

from .main_job import main

sys.exit(main())
