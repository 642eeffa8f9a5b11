"""``python -m stateline`` runs the command line."""

from stateline.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
