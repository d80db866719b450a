import sys

from infra.launcher import main

sys.exit(main())
