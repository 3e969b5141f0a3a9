"""Slack as the bot talks to it: the one call helper, cards and views, the notifier, DMs, the App Home, subcommands."""
