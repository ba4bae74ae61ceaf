import sys

from wasim.cli import main

sys.exit(main())
