"""One deactivation request from the ask to its delivered outcome: asking, deciding, executing, delivering, reminding."""
