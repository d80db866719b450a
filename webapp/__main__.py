import sys

from webapp import main

sys.exit(main())
