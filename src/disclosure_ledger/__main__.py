"""``python -m disclosure_ledger``: the command line."""

from disclosure_ledger._cli.main import main

if __name__ == "__main__":
    main()
