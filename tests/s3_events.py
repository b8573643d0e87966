"""S3 `ObjectCreated` notifications as Lambda receives them (for producer tests)."""

from __future__ import annotations

from typing import Any


def object_created(*objects: tuple[str, str, str, str | None]) -> dict[str, Any]:
    """One record per (bucket, key, etag, version id or None)."""
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": "us-east-1",
                "eventTime": "2024-01-01T00:00:00.000Z",
                "eventName": "ObjectCreated:Put",
                "userIdentity": {"principalId": "x"},
                "requestParameters": {"sourceIPAddress": "127.0.0.1"},
                "responseElements": {"x-amz-request-id": "r", "x-amz-id-2": "i"},
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "c",
                    "bucket": {
                        "name": bucket,
                        "ownerIdentity": {"principalId": "x"},
                        "arn": f"arn:aws:s3:::{bucket}",
                    },
                    "object": {
                        "key": key,
                        "size": 10,
                        "eTag": etag,
                        "sequencer": "01",
                        **({"versionId": version} if version else {}),
                    },
                },
            }
            for bucket, key, etag, version in objects
        ]
    }
