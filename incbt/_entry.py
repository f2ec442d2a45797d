"""The ``incbt`` command's entry point: the CLI's imports (typer, rich and incbt's
modules, ~0.2 s) happen here, where Ctrl-C during them is said in a line (exit 130)
like Ctrl-C during a command, not as a KeyboardInterrupt traceback (found 2026-12-05).
Nothing has been read or written yet at that point."""

import sys


def main() -> None:
    try:
        from incbt.cli import main as run
    except KeyboardInterrupt:
        sys.stderr.write("interrupted while starting: nothing was read or written\n")
        sys.exit(130)
    run()


if __name__ == "__main__":  # python -m incbt._entry (and python -m incbt: __main__.py)
    main()
