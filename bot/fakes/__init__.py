"""Fake sFOX and Slack servers for tests, the demo and rehearsals: testing aids, never production."""
