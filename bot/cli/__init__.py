"""The sfox-bot command: its parser and subcommands, and the helpers they share."""
