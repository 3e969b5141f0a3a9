"""`sfox-bot show batch:ID`: a batch's state, approvers, counts, the users left out, and every
user with its outcome. (`history --batch ID` is a filter of `history`, in bot/cli/main.py.)"""

from __future__ import annotations

import json
import sys
from typing import TextIO

from bot.batches.summary import outcome_csv
from bot.store.batches import BatchStore
from bot.store.db import Store


def write_batch_csv(store: Store, batch_id: int, out: TextIO) -> None:
    """Every user's outcome, exactly the CSV uploaded to the batch's thread at its end."""
    out.write(outcome_csv(BatchStore(store).rows(batch_id)))


def show_batch(store: Store, batch_id: int, fmt: str) -> bool:
    """Print the batch; False if there is none."""
    records = BatchStore(store)
    batch = records.get(batch_id)
    if batch is None:
        return False
    rows = records.rows(batch_id)
    counts = records.counts(batch_id)
    if fmt == "json":
        out = batch.as_dict()
        out["counts"] = counts
        out["users"] = [
            {
                "id": r.id,
                "sfox_user_id": r.sfox_user_id,
                "status": r.status,
                "http_status": r.http_status,
                "error": r.error,
                "completed_at": r.completed_at.isoformat() if r.completed_at else None,
            }
            for r in rows
        ]
        json.dump(out, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return True
    for key in ("id", "status", "requested_by", "reason", "created_at", "expires_at", "completed_at"):
        value = getattr(batch, key)
        print(
            f"{key:>14}  {value.isoformat() if hasattr(value, 'isoformat') else value if value is not None else '-'}"
        )
    print(f"{'approved_by':>14}  {', '.join(batch.approved_by) or '-'}")
    print(f"{'counts':>14}  {', '.join(f'{s} {n}' for s, n in sorted(counts.items())) or '-'}")
    for kind, users in batch.left_out.items():
        if users:
            print(f"{'left out':>14}  {kind}: {', '.join(u['sfox_user_id'] for u in users)}")
    print(f"\n{'request':>8}  {'sfox_user_id':<40}  {'status':<10}  {'http':>4}  error")
    for r in rows:
        print(
            f"{r.id:>8}  {r.sfox_user_id[:40]:<40}  {r.status:<10}  {r.http_status or '-':>4}  {r.error or ''}"
        )
    return True
