"""Who may ask, who may approve, never the requester, the quorum and its wording, reasons: the only place these rules are written."""
