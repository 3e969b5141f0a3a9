"""sfox-deactivate-bot: deactivate sFOX end-user accounts from Slack under a two-person rule."""
