"""The state store: one SQLite file holding tokens, cursors, mappings, ledgers and runs.

`Store` owns the connection; `store.tokens`, `store.matters` and `store.ledger(kind)` own the
statements of their tables. States are named in `states`.
"""

from mycase_sync.store.database import BUSY_TIMEOUT_MS, Store, open_store
from mycase_sync.store.states import ItemState, MatterState, RunKind, RunOutcome
from mycase_sync.values import iso, parse_iso, utcnow

__all__ = ["BUSY_TIMEOUT_MS", "ItemState", "MatterState", "RunKind", "RunOutcome", "Store", "iso", "open_store", "parse_iso",
           "utcnow"]
