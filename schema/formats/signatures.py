"""An electronic signature's shared vocabulary: what a signature can mean and what it can sign.

Both ends read these: the tablet's ``signatures`` table and the server's hold a meaning and a
signed record type from these lists only. When each meaning is needed is the tablet's rule
(``sidecar.domain.signatures``).

- ``approved``: an inspection completed with NG items, put on file as final;
- ``overridden``: a verdict that differs from the AI's verdict;
- ``released``: an item judged NG (by the AI or an earlier verdict) released as OK;
- ``discarded``: an inspection ended unfinished (discard, cancel, restart).

A signature signs one record, named by its outbox entity type and id, and carries that record's
``schema.formats.audit.row_digest`` as written in the same transaction.
"""

from __future__ import annotations

MEANINGS: tuple[str, ...] = ("approved", "overridden", "released", "discarded")
SIGNED_RECORDS: tuple[str, ...] = ("human_verification_result", "inspection_session")
