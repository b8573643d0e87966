"""Third-party scanners over template.yaml, with and without the regulated-user options (issue 13).

* checkov (its own virtualenv, `.venv-checkov`, made by `make test`: it pins dependencies of its own):
  no failed check; every suppression sits in the template's `Metadata: checkov: skip:` with a
  written reason, and docs/security.md lists it.
* parliament: every policy document of the translated template (roles, bucket and queue policies)
  has no finding except the ones explained here.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.iam.deployed import REPO, deployed
from tests.iam.options_template import OPTIONS_ON, with_defaults

CHECKOV = REPO / ".venv-checkov/bin/checkov"
VARIANTS = {"defaults": {}, "every option on": OPTIONS_ON}

#: parliament findings that are not ours to fix, and why
PARLIAMENT_EXPLAINED = {
    "NO_VERSION": "SAM writes the on-failure destination's policy without a Version; it has no policy "
    "variables, so the 2008 grammar it defaults to reads the same",
}


def variant(tmp_path: Path, params: dict[str, str]) -> Path:
    """template.yaml with these parameter values as defaults (scanners read defaults), as JSON."""
    out = tmp_path / "template.json"
    out.write_text(with_defaults(params))
    return out


def checkov(path: Path) -> dict[str, Any]:
    assert CHECKOV.exists(), "checkov is installed by `make test` (make checkov-venv)"
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "LOG_LEVEL": "WARNING"}
    proc = subprocess.run(
        [str(CHECKOV), "-f", str(path), "--framework", "cloudformation", "-o", "json", "--skip-download"],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )
    assert proc.stdout.strip().startswith("{"), proc.stderr[-2000:]
    return dict(json.loads(proc.stdout))


@pytest.mark.slow
@pytest.mark.parametrize("name", list(VARIANTS))
def test_checkov_finds_nothing_unexplained(name: str, tmp_path: Path) -> None:
    report = checkov(variant(tmp_path, VARIANTS[name]))
    summary, results = report["summary"], report["results"]
    assert summary["parsing_errors"] == 0
    assert summary["passed"] > 30  # it really scanned the template
    failed = [f"{c['check_id']} {c['resource']}: {c['check_name']}" for c in results["failed_checks"]]
    assert not failed, "checkov findings neither fixed nor suppressed with a reason:\n" + "\n".join(failed)
    security_doc = (REPO / "docs/security.md").read_text()
    for c in results["skipped_checks"]:
        comment = c.get("check_result", {}).get("suppress_comment", "")
        assert len(comment) > 40, f"{c['check_id']} on {c['resource']}: the reason must say why"
        assert c["check_id"] in security_doc, f"docs/security.md does not list {c['check_id']}"


def _policy_documents(params: dict[str, str]) -> list[tuple[str, dict[str, Any]]]:
    d = deployed(params)
    out = []
    for rid, res in d.resources.items():
        props = res.get("Properties", {})
        if res["Type"] == "AWS::IAM::Role":
            out += [(f"{rid}/{p['PolicyName']}", p["PolicyDocument"]) for p in props.get("Policies", [])]
        elif res["Type"] in ("AWS::S3::BucketPolicy", "AWS::SQS::QueuePolicy"):
            out.append((rid, props["PolicyDocument"]))
    return out


@pytest.mark.parametrize("name", list(VARIANTS))
def test_parliament_finds_nothing_unexplained_in_any_policy(name: str) -> None:
    from parliament import analyze_policy_string

    docs = _policy_documents(VARIANTS[name])
    assert len(docs) >= 6
    findings = [
        f"{where}: {f.issue} {f.detail or ''}"
        for where, doc in docs
        for f in analyze_policy_string(json.dumps(doc), include_community_auditors=True).findings
        if f.issue not in PARLIAMENT_EXPLAINED
    ]
    assert not findings, "\n".join(findings)
