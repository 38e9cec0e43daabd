"""``python -m multistage_client``: the command line, where its script is not on the PATH."""

from multistage_client.cli import main

if __name__ == "__main__":
    main()
