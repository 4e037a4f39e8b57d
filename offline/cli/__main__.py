"""`python -m offline.cli`: the same as the `airgap` command."""

import sys

from offline.cli.main import main

sys.exit(main())
