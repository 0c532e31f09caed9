import sys

from helixlab.cli import main

sys.exit(main())
