import sys

from q2pconf.cli import main

sys.exit(main())
