"""The hash-chained audit trail: appending, verifying and exporting it, and anchoring its head in Slack."""
