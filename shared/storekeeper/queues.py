"""Queues: SQS in AWS (and moto_server), a directory of message files for the embedded default.

Both take the same calls, so the producer and reaper code paths are the same
locally and deployed. Local queues also support receive/ack so the CLI can
drain them the way Lambda's event source mapping drains SQS.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

SQS_MAX_BATCH = 10


class OutgoingMessage(NamedTuple):
    body: str
    group_id: str | None = None
    dedup_id: str | None = None


class ReceivedMessage(NamedTuple):
    message_id: str
    body: str
    receipt: str
    group_id: str | None = None


class QueueSendError(Exception):
    """Some messages of a batch were not accepted; carries the failed indexes and causes."""

    def __init__(self, queue: str, failures: dict[int, str]) -> None:
        self.queue = queue
        self.failures = failures
        super().__init__(f"queue {queue}: {len(failures)} message(s) not sent: {list(failures.items())[:3]}")


class Queue(ABC):
    url: str

    def send(self, body: str, *, group_id: str | None = None, dedup_id: str | None = None) -> None:
        self.send_batch([OutgoingMessage(body, group_id, dedup_id)])

    @abstractmethod
    def send_batch(self, messages: Sequence[OutgoingMessage]) -> None:
        """Send all, in batches of at most 10; raise QueueSendError naming what failed."""

    @abstractmethod
    def receive(self, max_messages: int = 10) -> list[ReceivedMessage]: ...

    @abstractmethod
    def ack(self, message: ReceivedMessage) -> None: ...


class SqsQueue(Queue):
    def __init__(self, url: str, client: Any | None = None) -> None:
        import boto3

        from storekeeper.netconfig import boto_config, guard

        self.url = url
        self.fifo = url.endswith(".fifo")
        self.client: Any = client or guard(boto3.client("sqs", config=boto_config()))

    def send_batch(self, messages: Sequence[OutgoingMessage]) -> None:
        failures: dict[int, str] = {}
        for start in range(0, len(messages), SQS_MAX_BATCH):
            chunk = messages[start : start + SQS_MAX_BATCH]
            entries = []
            for i, m in enumerate(chunk):
                e: dict[str, Any] = {"Id": str(start + i), "MessageBody": m.body}
                if self.fifo:
                    e["MessageGroupId"] = m.group_id or "default"
                    e["MessageDeduplicationId"] = m.dedup_id or uuid.uuid4().hex
                entries.append(e)
            try:
                resp = self.client.send_message_batch(QueueUrl=self.url, Entries=entries)
            except Exception as exc:  # the whole request failed: every entry of the chunk failed
                failures.update({start + i: str(exc) for i in range(len(chunk))})
                continue
            for f in resp.get("Failed", []):
                failures[int(f["Id"])] = f"{f.get('Code')}: {f.get('Message')}"
        if failures:
            raise QueueSendError(self.url, failures)

    def receive(self, max_messages: int = 10) -> list[ReceivedMessage]:
        resp = self.client.receive_message(
            QueueUrl=self.url,
            MaxNumberOfMessages=min(max_messages, 10),
            AttributeNames=["MessageGroupId"],
            WaitTimeSeconds=0,
        )
        return [
            ReceivedMessage(
                m["MessageId"], m["Body"], m["ReceiptHandle"], m.get("Attributes", {}).get("MessageGroupId")
            )
            for m in resp.get("Messages", [])
        ]

    def ack(self, message: ReceivedMessage) -> None:
        self.client.delete_message(QueueUrl=self.url, ReceiptHandle=message.receipt)


class LocalQueue(Queue):
    """A directory: one JSON file per message, named so they sort in send order."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.url = f"file://{self.path}"

    def send_batch(self, messages: Sequence[OutgoingMessage]) -> None:
        for m in messages:
            mid = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
            tmp = self.path / f".{mid}.tmp"
            tmp.write_text(json.dumps({"id": mid, "body": m.body, "group": m.group_id, "dedup": m.dedup_id}))
            tmp.replace(self.path / f"{mid}.json")

    def receive(self, max_messages: int = 10) -> list[ReceivedMessage]:
        out: list[ReceivedMessage] = []
        for f in sorted(self.path.glob("*.json"))[:max_messages]:
            try:
                data = json.loads(f.read_text())
            except FileNotFoundError:
                continue
            out.append(ReceivedMessage(data["id"], data["body"], str(f), data.get("group")))
        return out

    def ack(self, message: ReceivedMessage) -> None:
        Path(message.receipt).unlink(missing_ok=True)

    def __len__(self) -> int:
        return len(list(self.path.glob("*.json")))


def open_queue(url_or_name: str) -> Queue:
    """`http(s)://...` -> SQS; `file:///dir` -> local; a bare name -> local under the default home."""
    if url_or_name.startswith(("https://", "http://")):
        return SqsQueue(url_or_name)
    if url_or_name.startswith("file://"):
        return LocalQueue(Path(url_or_name[len("file://") :]))
    from storekeeper.stores import default_home

    return LocalQueue(default_home() / "queues" / url_or_name)


def queue_from_env(var: str, default_name: str) -> Queue:
    return open_queue(os.environ.get(var) or default_name)
