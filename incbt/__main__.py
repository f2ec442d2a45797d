"""``python -m incbt ARGS``: the ``incbt`` command."""

from incbt._entry import main

main()
