"""Policy files: units, the bundled defaults, and errors that name line, policy and field."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pydantic
import pytest

from storekeeper.policies import PolicyFileError, load_policies, parse_policies
from storekeeper.policies.filters import REGISTRY, KeepNewest, OlderThan, register
from storekeeper.policies.registry import Registry
from storekeeper.policies.resources import ResourceKind
from storekeeper.policies.units import parse_duration, parse_ratio, parse_size


@pytest.mark.parametrize("bad", ["30 days", "5", "", "h", "1x"])
def test_bad_durations_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


@pytest.mark.parametrize("bad", ["1 GBs", "lots", -1, True])
def test_bad_sizes_are_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_size(bad)  # type: ignore[arg-type]


def test_sizes_durations_ratios() -> None:
    assert parse_size("1GB") == 10**9
    assert parse_size("2GiB") == 2 * 2**30
    assert parse_size("500 MB") == 500 * 10**6
    assert parse_size(123) == 123
    assert parse_duration("30d") == timedelta(days=30)
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_ratio(0.85) == 0.85
    with pytest.raises(ValueError, match=r"write 0\.85"):
        parse_ratio(85)
    with pytest.raises(ValueError, match=r"write 0\.95"):
        parse_ratio("95%")
    with pytest.raises(ValueError, match="between 0 and 1"):
        parse_ratio(-0.1)


def test_bundled_defaults_load_and_cover_the_shipped_kinds() -> None:
    loaded = load_policies()
    spec = loaded.spec
    names = {p.name for p in spec.policies}
    assert {"snapshot-retention", "orphan-snapshot-versions", "applied-deltas", "stale-temp-objects"} <= names
    retention = next(p for p in spec.policies if p.name == "snapshot-retention")
    assert retention.resource is ResourceKind.snapshot_version
    assert isinstance(retention.filters[0], OlderThan)
    assert retention.filters[0].age == timedelta(hours=1)
    assert isinstance(retention.set_filter, KeepNewest)
    assert retention.set_filter.count == 3
    assert spec.protect.labels["keep"] is None
    assert "*-shared" in spec.protect.names


def test_default_policies_json_twin_is_current() -> None:
    """The reaper loads the default from its JSON twin: it must be the YAML's parse, as written now."""
    from storekeeper.policies import model

    twin = Path(model.__file__).parent.parent / "data" / model.DEFAULT_POLICIES_JSON
    assert twin.read_text() == model.parsed_twin(model.default_policies_text()), (
        "default-policies.yaml changed: run `python scripts/default_policies_json.py`"
    )
    from_twin = model.load_default_policies()
    from_yaml = parse_policies(model.default_policies_text(), model.DEFAULT_POLICIES)
    assert from_twin == from_yaml


def test_a_stale_or_invalid_twin_falls_back_to_the_yaml(monkeypatch: pytest.MonkeyPatch) -> None:
    from storekeeper.policies import model

    text = model.default_policies_text().replace("count: 3", "count: 5")
    monkeypatch.setattr(model, "default_policies_text", lambda: text)
    retention = next(p for p in model.load_default_policies().spec.policies if p.name == "snapshot-retention")
    assert isinstance(retention.set_filter, KeepNewest)
    assert retention.set_filter.count == 5  # the twin holds 3 under another sha256: not used

    real = model._data_file
    bad_twin = {"sha256": model._sha256(text), "data": {"policies": [{"name": "x"}]}}
    monkeypatch.setattr(
        model, "_data_file", lambda name: json.dumps(bad_twin) if name.endswith(".json") else real(name)
    )
    loaded = model.load_default_policies()
    assert loaded.sha256 == model._sha256(text)
    assert loaded.spec.policies[0].name == "snapshot-retention"
    monkeypatch.setattr(model, "_data_file", lambda n: "{not json" if n.endswith(".json") else real(n))
    assert model.load_default_policies() == loaded


def test_default_sub_models_equal_validated_ones() -> None:
    """StoreSpec/Policy fill watermarks and limits by model_construct: the defaults must validate."""
    from storekeeper.policies.model import Limits, Watermarks

    assert Watermarks.model_construct() == Watermarks() == Watermarks.model_validate({})
    assert Limits.model_construct() == Limits() == Limits.model_validate({})
    spec = parse_policies("stores: {main: {}}\n").spec.stores["main"]
    assert spec.watermarks == Watermarks(high=0.85, low=0.70, hard=0.95)


def test_a_twin_refuses_what_json_would_change() -> None:
    from storekeeper.policies.model import parsed_twin

    with pytest.raises(ValueError, match="JSON"):
        parsed_twin("stores: {main: {}}\nwhen: 2024-06-01T12:00:00Z\n")


def test_commented_examples_in_defaults_are_valid() -> None:
    """Enabling the '#>' examples must give a valid file: people copy them."""
    from storekeeper.policies.model import default_policies_text

    # the example `main:` replaces `main: {}` (a duplicate key is an error, not "the last one wins")
    text = default_policies_text().splitlines()
    lines = [ln.replace("#> ", "", 1) for ln in text if not ln.startswith("  main: {}")]
    loaded = parse_policies("\n".join(lines), "examples.yaml")
    kinds = {p.resource for p in loaded.spec.policies}
    assert kinds == set(ResourceKind) - {ResourceKind.vector_index}
    assert {"images-watermark", "images-overflow", "vector-bucket-quota", "expired-test-buckets"} <= {
        p.name for p in loaded.spec.policies
    }
    assert loaded.spec.stores["main"].capacity == 10**9
    assert loaded.spec.stores["vectors"].quota == 10


BAD = """\
stores:
  main:
    capacity: 1GB
  images:
    capacity: 2GB
    watermarks: {high: 85, low: 0.7}
policies:
  - name: images-age
    resource: object
    store: main
    prefix: images/
    filters:
      - {type: older-than, age: 30 days}
  - name: wrong-kind
    resource: bucket
    store: main
    filters:
      - type: name-prefix
        value: test-
      - type: watermark
  - name: typo
    resource: object
    store: main
    filters:
      - type: older-then
        age: 1d
"""


def test_errors_name_line_policy_and_field() -> None:
    with pytest.raises(PolicyFileError) as ei:
        parse_policies(BAD, "p.yaml")
    problems = ei.value.problems
    text = "\n".join(problems)
    assert "p.yaml:6: store 'images': watermarks.high: ratio 85 is above 1" in text
    assert "write 0.85" in text
    assert "p.yaml:13: policy 'images-age': filters[0].age: (older-than) duration" in text
    assert "got '30 days'" in text
    assert (
        "p.yaml:20: policy 'wrong-kind': filters[1].type: watermark does not apply to resource bucket" in text
    )
    assert "p.yaml:25: policy 'typo': filters[0]: unknown filter type 'older-then'" in text
    assert len(problems) == 4


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "policies:\n  - name: a\n    resource: object\n    store: nope\n",
            "p.yaml:4: policy 'a': store: unknown store 'nope'",
        ),
        (
            "policies:\n  - {name: a, resource: object, store: main}\n"
            "  - {name: a, resource: delta, store: main}\n",
            "p.yaml:3: policy 'a': name: duplicate policy name 'a'",
        ),
        (
            "policies:\n  - name: a\n    resource: blob\n    store: main\n",
            "p.yaml:3: policy 'a': resource: Input should be",
        ),
        (
            "stores:\n  main:\n    watermarks: {high: 0.7, low: 0.8}\n",
            "p.yaml:3: store 'main': watermarks: watermarks must satisfy",
        ),
        ("stores:\n  main:\n    capacity: 1 gigabyte\n", "p.yaml:3: store 'main': capacity: size must be"),
        (
            "policies:\n  - name: a\n    resource: vector_bucket\n    store: main\n",
            "needs a store of kind vectors",
        ),
        ("policies: [\n", "p.yaml:2: not valid YAML"),
        (
            "policies:\n  - name: a\n    resource: object\n    store: main\n"
            "    filters:\n      - {type: size}\n",
            "p.yaml:6: policy 'a': filters[0]: (size) size needs gt and/or lt",
        ),
        ("defaults:\n  grace: 10\n", "p.yaml:2: defaults.grace: duration must be"),
        ("protect:\n  labelz: {}\n", "p.yaml:2: protect.labelz: Extra inputs are not permitted"),
    ],
)
def test_each_error_is_located(text: str, expected: str) -> None:
    with pytest.raises(PolicyFileError) as ei:
        parse_policies(text, "p.yaml")
    assert expected in str(ei.value)


def test_policies_path_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "mine.yaml"
    f.write_text(
        "policies:\n  - {name: only, resource: object, store: main, prefix: cache/,"
        " filters: [{type: older-than, age: 48h}]}\n"
    )
    monkeypatch.setenv("REAPER_POLICIES", str(f))
    loaded = load_policies()
    assert [p.name for p in loaded.spec.policies] == ["only"]
    assert loaded.source == str(f)
    with pytest.raises(Exception, match="cannot read"):
        load_policies(tmp_path / "missing.yaml")


def test_every_filter_is_registered_with_its_name() -> None:
    assert set(REGISTRY) == {
        "name-prefix",
        "name-glob",
        "name-regex",
        "older-than",
        "ttl",
        "label",
        "size",
        "usage-ratio",
        "watermark",
        "count-above-quota",
        "keep-newest",
        "unpublished",
        "applied",
    }
    for name, cls in REGISTRY.items():
        assert cls.type_name == name  # register() set it: the name is written once
    with pytest.raises(ValueError, match="registered twice"):
        register("older-than")(OlderThan)


def test_a_filter_module_is_imported_when_its_name_is_first_asked_for() -> None:
    """The registry knows each filter's module: a policy file naming one filter creates its class
    (and its module's), no other; the names and every class are still all there."""
    code = (
        "import sys\n"
        "from storekeeper.policies.filters import MODULES, REGISTRY\n"
        "from storekeeper.policies.model import PolicyFile\n"
        "pkg = 'storekeeper.policies.filters.'\n"
        "loaded = lambda: sorted(m.removeprefix(pkg) for m in sys.modules if m.startswith(pkg))\n"
        "print(len(REGISTRY), len(REGISTRY.names()), 'label' in REGISTRY, 'nope' in REGISTRY,\n"
        "      loaded() or '-')\n"
        "f = PolicyFile.model_validate({'policies': [{'name': 'p', 'resource': 'object', 'store': 'main',\n"
        "    'filters': [{'type': 'label', 'key': 'k'}]}]}).policies[0].filters[0]\n"
        "print(type(f).__name__, type(f).__module__, *loaded())\n"
        "print(len(dict(REGISTRY.items())), *loaded())\n"
        "from storekeeper.policies.filters import OlderThan\n"
        "print(OlderThan is REGISTRY['older-than'], OlderThan.type_name)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "shared")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.splitlines() == [
        "13 13 True False -",
        "Label storekeeper.policies.filters.labels labels",  # ttl lives there too: both label filters
        "13 age applied labels names quotas sizes versions",
        "True older-than",
    ]


def test_a_registered_module_that_does_not_register_its_name_is_a_clear_error() -> None:
    reg: Registry[type] = Registry("thing", modules={"x": "json"})
    assert "x" in reg
    assert reg.names() == ["x"]
    with pytest.raises(LookupError, match="json does not register thing 'x'"):
        reg.get("x")
    with pytest.raises(KeyError, match="unknown thing 'y': use one of x"):
        reg["y"]


def test_columnar_evaluation_is_for_the_registered_class_alone() -> None:
    from storekeeper.policies.fastpath import columnar

    class Sub(OlderThan):  # a subclass keeps the name but may read anything: the general path plans it
        pass

    assert columnar(OlderThan.model_validate({"age": "1h"})) is not None
    assert columnar(Sub.model_validate({"age": "1h"})) is None
    assert columnar(KeepNewest.model_validate({})) is None


def test_a_filter_type_must_be_its_registered_name() -> None:
    assert OlderThan(age="1h").type == "older-than"  # type: ignore[call-arg]
    with pytest.raises(pydantic.ValidationError, match="registered name"):
        OlderThan.model_validate({"type": "ttl", "age": "1h"})
