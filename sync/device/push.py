"""Pushing the outbox: batches in ``(priority DESC, seq ASC)`` order, deleted only once applied.

A batch is deleted only after the server's answer names the sequence through which it stored it;
a crash, a reset or a lost answer in between means the batch is simply sent again, and the server
ignores the copies (it deduplicates by operation id).

What the server refuses for good is set aside, one operation at a time, with the server's reason:
an answer naming the bad operations sets those aside; a refusal that names none makes the batch
shrink to single operations so the culprit is found; an oversized batch halves. Everything else
(network, 5xx, 429, credentials) leaves the rows where they are, counts the attempt on them
(``retry_count``, ``last_retry_at``) and propagates to the scheduler's backoff.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass

from sync.batching import Batch, PushBatcher, find_entry
from sync.device.client import SyncClient
from sync.device.outbox_store import SqliteOutbox
from sync.errors import (
    InvalidRequest,
    OperationRejected,
    PayloadTooLarge,
    ServerUnavailable,
    SyncError,
)
from sync.policy import BatchSizer

log = logging.getLogger(__name__)


@dataclass
class PushResult:
    pushed: int = 0
    set_aside: int = 0
    batches: int = 0
    has_more: bool = False


def build_body(batch: Batch, device_id: str, device_type: str, app_version: str) -> bytes:
    """The push request, with each row's ``data`` JSON spliced in as stored (no re-encoding)."""
    head = json.dumps(
        {"device_id": device_id, "device_type": device_type, "app_version": app_version}
    )
    ops = []
    for entry in batch.entries:
        meta = json.dumps(
            {
                "seq": entry.seq,
                "op_id": entry.op_id,
                "entity_type": entry.entity_type,
                "entity_id": entry.entity_id,
                "operation": entry.operation,
                "priority": entry.priority,
                "retry_count": entry.retry_count,
                "created_at": entry.created_at,
            },
            separators=(",", ":"),
        )
        ops.append(f'{meta[:-1]},"data":{entry.data}}}')
    return f'{head[:-1]},"ops":[{",".join(ops)}]}}'.encode()


class Pusher:
    def __init__(
        self,
        outbox: SqliteOutbox,
        *,
        device_type: str,
        app_version: str,
        batch_size: int = 2000,
        stall_warning_after: int = 10,
    ) -> None:
        self.outbox = outbox
        self.device_type = device_type
        self.app_version = app_version
        self.batcher = PushBatcher(outbox, stall_warning_after=stall_warning_after)
        self.sizer = BatchSizer(maximum=batch_size)

    def push(self, client: SyncClient, device_id: str, budget_s: float = 20.0) -> PushResult:
        result = PushResult()
        deadline = time.monotonic() + budget_s
        while True:
            batch = self.batcher.next_batch(self.sizer.current)
            if batch is None:
                return result
            if time.monotonic() > deadline:
                result.has_more = True
                return result
            body = build_body(batch, device_id, self.device_type, self.app_version)
            result.batches += 1
            try:
                answer = client.push(body)
            except OperationRejected as exc:
                result.set_aside += self._set_aside_named(batch, exc)
                continue
            except PayloadTooLarge as exc:
                if len(batch) == 1:
                    self.batcher.set_aside(batch.entries[0], f"{exc.code}: {exc.message}")
                    result.set_aside += 1
                else:
                    log.info("batch of %d refused as too large; halving", len(batch))
                    self.sizer.shrink()
                continue
            except InvalidRequest as exc:
                if len(batch) == 1:
                    self.batcher.set_aside(batch.entries[0], f"{exc.code}: {exc.message}")
                    result.set_aside += 1
                else:
                    self.sizer.single()
                continue
            except SyncError:
                self.batcher.failed(batch)
                raise
            try:
                done = self.batcher.complete(batch, answer.applied_through_seq)
            except ValueError as exc:
                self.batcher.failed(batch)
                raise ServerUnavailable(
                    f"server named seq {answer.applied_through_seq}, not in the batch sent",
                    code="bad_answer",
                ) from exc
            result.pushed += done
            self.sizer.grow()
            if not batch.has_more and done == len(batch):
                return result

    def _set_aside_named(self, batch: Batch, exc: OperationRejected) -> int:
        rejected = exc.detail.get("rejected")
        named = 0
        if isinstance(rejected, list):
            for item in rejected:
                if not isinstance(item, dict):
                    continue
                entry = find_entry(batch, seq=item.get("seq"), op_id=item.get("op_id"))
                if entry is None:
                    continue
                self.batcher.set_aside(entry, str(item.get("reason") or exc.message))
                named += 1
        if named:
            return named
        if len(batch) == 1:
            self.batcher.set_aside(batch.entries[0], exc.message)
            return 1
        # The refusal names no operation: find it by sending one at a time.
        self.sizer.single()
        return 0
