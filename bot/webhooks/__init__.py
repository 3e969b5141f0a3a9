"""Signed HTTP with systems outside Slack (issue 20): the intake API's requests and callbacks, and
the audit stream's deliveries, all signed one way (`signing`) and retried one way."""
