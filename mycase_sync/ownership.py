"""A state store belongs to one firm: one MyCase firm and one Case Status account.

Its id mappings mean something only there. Pointed at another firm (a wrong --env-file on a
machine that serves two, a copied store), they would PATCH unrelated Case Status cases. So the
store records, on first use, the MyCase firm that authorised it and a keyed fingerprint of the
Case Status API key (HMAC under a random per-store salt: it says "the same key" and nothing
about the key); every later use compares before any request is sent.
"""

from __future__ import annotations

import hashlib
import hmac

from mycase_sync.casestatus import client as cs
from mycase_sync.errors import ConfigError

ACCEPT_COMMAND = "mycase-sync accept-casestatus-key"


def fingerprint(salt: str, api_key: str) -> str:
    return hmac.new(salt.encode(), api_key.encode(), hashlib.sha256).hexdigest()


def check_casestatus_key(store, api_key: str) -> bool:
    """Record the key's fingerprint on first use (True: recorded now); refuse (exit 2) a store built
    with another key."""
    identity = store.identity.read()
    seen = fingerprint(identity["salt"], api_key)
    if identity.get("casestatus_key_fingerprint") is None:
        store.identity.record(casestatus_key_fingerprint=seen)
        return True
    if not hmac.compare_digest(seen, identity["casestatus_key_fingerprint"]):
        raise ConfigError(f"CASESTATUS_API_KEY is not the key state store {store.path} was built with (nothing"
                          " was sent): check the key (`mycase-sync doctor` says whether Case Status accepts it),"
                          " --env-file and MYCASE_SYNC_DB; after Case Status rotated your firm's key, run"
                          f" `{ACCEPT_COMMAND}`")
    return False


def forget_casestatus_key(store) -> None:
    """Undo a first use whose key Case Status refused: the store must not keep a key that never worked."""
    store.identity.record(casestatus_key_fingerprint=None)


def recorded_key_matches(store, api_key: str) -> bool | None:
    """Whether the store was built with this Case Status key; None when it has recorded none. Read-only."""
    identity = store.identity.recorded() or {}
    if identity.get("casestatus_key_fingerprint") is None:
        return None
    return hmac.compare_digest(fingerprint(identity["salt"], api_key), identity["casestatus_key_fingerprint"])


def check_mycase_firm(store, firm_uuid: str | None, firm_name: str | None) -> None:
    """Record the MyCase firm on first connection; refuse (exit 2) a connection to another firm.

    A store connected before firms were recorded takes its firm from the stored tokens."""
    identity = store.identity.read()
    known = identity.get("mycase_firm_uuid")
    if known is None:
        tokens = store.tokens.read() or {}
        known = tokens.get("firm_uuid")
    if firm_uuid and known and firm_uuid != known:
        shown = f" ({identity.get('mycase_firm_name')})" if identity.get("mycase_firm_name") else ""
        raise ConfigError(f"state store {store.path} belongs to another MyCase firm{shown}; this account is of"
                          f" {firm_name or 'another firm'}: check --env-file and MYCASE_SYNC_DB (nothing was saved)")
    if firm_uuid and identity.get("mycase_firm_uuid") is None:
        store.identity.record(mycase_firm_uuid=firm_uuid, mycase_firm_name=firm_name)


def accept_casestatus_key(store, casestatus, api_key: str) -> str:
    """After a key rotation: record the new key, once it is seen to reach the same account (the cases
    this store imported have the same ids through it). Returns what was checked."""
    sample = store.matters.sample_imported()
    for mycase_id, casestatus_id in sample:
        case = casestatus.find_case(mycase_id)
        found = case.get(cs.F_ID) if isinstance(case, dict) else None
        if str(found) != str(casestatus_id):
            raise ConfigError(f"the configured Case Status API key does not reach the account of state store"
                              f" {store.path}: case {casestatus_id} (MyCase {mycase_id}) is not there; key not recorded")
    identity = store.identity.read()
    store.identity.record(casestatus_key_fingerprint=fingerprint(identity["salt"], api_key))
    if sample:
        return f"the new key reaches the same {len(sample)} imported case{'s' if len(sample) > 1 else ''}"
    return "no imported case to compare yet"
