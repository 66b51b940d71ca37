"""``python -m brightscan`` runs the command line."""

from brightscan.cli.main import main

if __name__ == "__main__":
    main()
