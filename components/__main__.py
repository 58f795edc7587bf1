import sys

from components.dependencies import dependency_hint

with dependency_hint():  # the CLI's modules import PyYAML and python-dotenv, and its commands more
    from components.cli import main

    sys.exit(main())
