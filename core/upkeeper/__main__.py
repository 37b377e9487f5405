"""``python -m upkeeper`` runs the command line."""

from upkeeper.cli.entry import main

if __name__ == "__main__":
    main(prog_name="upkeeper")
