import sys

from mec.cli import main

sys.exit(main())
