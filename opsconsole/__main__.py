"""``python -m opsconsole``: the same as the ``opsconsole`` command."""

from opsconsole.cli.app import main

main()
