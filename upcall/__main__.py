import sys

try:
    from upcall.cli import main  # light; main() itself handles a Ctrl-C from here on
except KeyboardInterrupt:
    sys.exit(130)

sys.exit(main())
