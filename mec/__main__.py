import sys

try:
    from mec.cli import main

    code = main()
except KeyboardInterrupt:  # Ctrl-C before a command took the signal (mec.interrupt): one line all the same
    print("stopped by SIGINT; rerun the command", file=sys.stderr)
    code = 130
sys.exit(code)
