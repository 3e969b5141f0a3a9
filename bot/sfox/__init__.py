"""The sFOX Connect API as this bot uses it: the client, balances, user ids, and the pacing of its routes."""
