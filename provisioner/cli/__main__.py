"""`python -m provisioner.cli`: the same as the `airgap` command."""

import sys

from provisioner.cli.main import main

sys.exit(main())
