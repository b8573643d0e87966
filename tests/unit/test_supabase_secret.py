"""Deployed functions get the Supabase key from Secrets Manager, named by ARN."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from storekeeper.errors import BackendError
from storekeeper.stores.supabase import service_key_from_env


@pytest.fixture
def no_key_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv("SUPABASE_SERVICE_KEY", raising=False)
    monkeypatch.delenv("SUPABASE_SERVICE_KEY_SECRET_ARN", raising=False)
    return monkeypatch


def test_plain_env_key_wins(no_key_env: pytest.MonkeyPatch) -> None:
    no_key_env.setenv("SUPABASE_SERVICE_KEY", " direct-key ")
    no_key_env.setenv("SUPABASE_SERVICE_KEY_SECRET_ARN", "arn:aws:secretsmanager:us-east-1:1:secret:x")
    assert service_key_from_env() == "direct-key"


@mock_aws
def test_secret_arn_is_resolved(no_key_env: pytest.MonkeyPatch) -> None:
    arn = boto3.client("secretsmanager").create_secret(Name="sb-key", SecretString="from-secrets-manager\n")[
        "ARN"
    ]
    no_key_env.setenv("SUPABASE_SERVICE_KEY_SECRET_ARN", arn)
    assert service_key_from_env() == "from-secrets-manager"


@mock_aws
def test_missing_secret_names_the_variable(no_key_env: pytest.MonkeyPatch) -> None:
    no_key_env.setenv(
        "SUPABASE_SERVICE_KEY_SECRET_ARN", "arn:aws:secretsmanager:us-east-1:123456789012:secret:nope"
    )
    with pytest.raises(BackendError, match="SUPABASE_SERVICE_KEY_SECRET_ARN"):
        service_key_from_env()


def test_neither_set_gives_empty(no_key_env: pytest.MonkeyPatch) -> None:
    assert service_key_from_env() == ""
