import sys

from pyservice.venue_sim.cli import main

sys.exit(main())
