"""Lambda's SQS event source mapping, by hand, for tests against moto_server: receive batches of up to
10, invoke the function with the event Lambda would send, delete what did not fail."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from storekeeper.runtime import invoke
from storekeeper.stores.base import ObjectStore

REPO = Path(__file__).resolve().parents[1]


class Mapping:
    """One queue -> one function (default: the compactor), with partial batch responses."""

    def __init__(
        self, sqs: Any, url: str, store: ObjectStore, env: dict[str, str], function: str = "compactor"
    ) -> None:
        self.sqs, self.url, self.store, self.env, self.function = sqs, url, store, env, function
        self.arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]

    def receive(self) -> list[dict[str, Any]]:
        return list(
            self.sqs.receive_message(
                QueueUrl=self.url,
                MaxNumberOfMessages=10,
                MessageSystemAttributeNames=["All"],
                WaitTimeSeconds=0,
            ).get("Messages", [])
        )

    def deliver(self, messages: list[dict[str, Any]], **env: str) -> set[str]:
        """Invoke the compactor with these messages; delete the ones that succeeded; return the failed ids."""
        event = {
            "Records": [
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": m["Attributes"],
                    "messageAttributes": {},
                    "md5OfBody": m["MD5OfBody"],
                    "eventSource": "aws:sqs",
                    "eventSourceARN": self.arn,
                    "awsRegion": "us-east-1",
                }
                for m in messages
            ]
        }
        res = invoke(self.function, event, root=REPO, store=self.store.url, env={**self.env, **env})
        assert res.ok, res.to_json()
        failed = {f["itemIdentifier"] for f in res.response["batchItemFailures"]}
        for m in messages:
            if m["MessageId"] not in failed:
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=m["ReceiptHandle"])
        return failed

    def drain(self, **env: str) -> int:
        """Deliver batches until the queue answers empty; returns how many records failed."""
        failed = 0
        while batch := self.receive():
            failed += len(self.deliver(batch, **env))
        return failed
