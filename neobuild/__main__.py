"""``python -m neobuild``."""

from neobuild.cli import main

main()
