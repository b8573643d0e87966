"""Deployed functions get the Supabase key and database URL from Secrets Manager, named by ARN.

Both settings are read by one function (`supabase_cas.setting_from_env`); each case runs for both.
"""

from __future__ import annotations

from collections.abc import Callable

import boto3
import pytest
from moto import mock_aws

from storekeeper.errors import BackendError
from storekeeper.stores.supabase import service_key_from_env
from storekeeper.stores.supabase_cas import db_url_from_env

#: (variable, its secret's ARN variable, the reader)
SETTINGS = [
    ("SUPABASE_SERVICE_KEY", "SUPABASE_SERVICE_KEY_SECRET_ARN", service_key_from_env),
    ("SUPABASE_DB_URL", "SUPABASE_DB_URL_SECRET_ARN", db_url_from_env),
]
Reader = Callable[[], str]


@pytest.fixture(params=SETTINGS, ids=[name for name, _, _ in SETTINGS])
def setting(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str, Reader]:
    name, arn_name, read = request.param
    monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv(arn_name, raising=False)
    return name, arn_name, read


def test_plain_env_value_wins(setting: tuple[str, str, Reader], monkeypatch: pytest.MonkeyPatch) -> None:
    name, arn_name, read = setting
    monkeypatch.setenv(name, " direct-value ")
    monkeypatch.setenv(arn_name, "arn:aws:secretsmanager:us-east-1:1:secret:x")
    assert read() == "direct-value"


@mock_aws
def test_secret_arn_is_resolved(setting: tuple[str, str, Reader], monkeypatch: pytest.MonkeyPatch) -> None:
    name, arn_name, read = setting
    sm = boto3.client("secretsmanager")
    arn = sm.create_secret(Name=f"sb-{name.lower()}", SecretString="from-secrets-manager\n")["ARN"]
    monkeypatch.setenv(arn_name, arn)
    assert read() == "from-secrets-manager"


@mock_aws
def test_missing_secret_names_the_variable(
    setting: tuple[str, str, Reader], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, arn_name, read = setting
    monkeypatch.setenv(arn_name, "arn:aws:secretsmanager:us-east-1:123456789012:secret:nope")
    with pytest.raises(BackendError, match=arn_name):
        read()


def test_neither_set_gives_empty(setting: tuple[str, str, Reader]) -> None:
    assert setting[2]() == ""
