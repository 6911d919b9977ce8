import sys

try:
    from upcall.cli import main  # light; main() itself handles a Ctrl-C from here on
except KeyboardInterrupt:  # before main() could: end as main() ends an interrupted run
    import os
    import signal

    print("upcall: interrupted", file=sys.stderr, flush=True)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGINT)

sys.exit(main())
