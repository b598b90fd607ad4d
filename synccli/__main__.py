"""``python -m synccli``: the same as the ``synccli`` command."""

from synccli.cli.main import main

if __name__ == "__main__":
    main()
