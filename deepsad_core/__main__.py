import sys

from deepsad_core.cli import main

sys.exit(main())
