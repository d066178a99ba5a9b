"""``python -m facever`` runs the command-line interface."""

from facever_cli.app import main

if __name__ == "__main__":
    main()
