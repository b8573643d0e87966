"""Write shared/storekeeper/data/default-policies.json, the JSON twin of the bundled default policies.

The reaper validates the default from this twin while its sha256 matches the YAML (no PyYAML import
on a cold start); after editing default-policies.yaml run `python scripts/default_policies_json.py`
(tests/unit/test_policies.py fails until the twin is current).
"""

from __future__ import annotations

from pathlib import Path

from storekeeper.policies.model import DEFAULT_POLICIES_JSON, default_policies_text, parsed_twin

TWIN = Path(__file__).resolve().parents[1] / "shared" / "storekeeper" / "data" / DEFAULT_POLICIES_JSON


def main() -> None:
    TWIN.write_text(parsed_twin(default_policies_text()))
    print(f"wrote {TWIN}")


if __name__ == "__main__":
    main()
