import sys

from jdl.cli import main

sys.exit(main())
