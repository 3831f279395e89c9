"""The ``zerodrop`` command (placeholder until the CLI lands)."""
import sys


def main(argv=None) -> int:
    print("zerodrop: the command is not built yet", file=sys.stderr)
    return 4
