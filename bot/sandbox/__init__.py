"""Slack-free rehearsal: the sandbox harness that drives the real bot over HTTP, the demo, the console and their transcript."""
