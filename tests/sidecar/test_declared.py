"""Declared connectors (issue 4): parsing and normalising the file, and drift against the worker's answer."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from connect_health.declared import DeclarationError, Declared, config_value, drift, load, offsets_schema, parse
from connect_health.snapshot import parse_expanded

from .fakeconnect import fixture

SECRET_REF = "${directory:/mnt/secrets/pg:password}"


def worker_config(name: str, data: dict[str, Any] | None = None) -> dict[str, str]:
    cfg = dict((data or fixture("healthy.json"))[name]["info"]["config"])
    cfg.pop("name")
    return cfg


def test_defaults_and_normalisation_to_connect_strings() -> None:
    decl = parse({"jdbc-sink": {"config": {"connector.class": "io.confluent.connect.jdbc.JdbcSinkConnector",
                                           "tasks.max": 2, "auto.create": True, "delete.enabled": False,
                                           "batch.size": 3000, "retry.backoff.ms": 1.5, "topics": ["a", "b"],
                                           "errors.tolerance": None}}})
    d = decl["jdbc-sink"]
    assert (d.state, d.policy) == ("running", "critical")
    assert d.config == {"connector.class": "io.confluent.connect.jdbc.JdbcSinkConnector", "tasks.max": "2",
                        "auto.create": "true", "delete.enabled": "false", "batch.size": "3000",
                        "retry.backoff.ms": "1.5", "topics": "a,b", "errors.tolerance": ""}
    assert all(isinstance(v, str) for v in d.config.values())
    assert d.connector_class == "io.confluent.connect.jdbc.JdbcSinkConnector"


@pytest.mark.parametrize(("value", "expected"), [(True, "true"), (False, "false"), (0, "0"), (10, "10"),
                                                 ("10", "10"), (None, ""), ([1, True], "1,true"),
                                                 ({"b": 1, "a": 2}, '{"a": 2, "b": 1}')])
def test_config_value(value: Any, expected: str) -> None:
    assert config_value(value) == expected


def test_secret_references_pass_through_untouched() -> None:
    decl = parse({"pg": {"config": {"connector.class": "X", "connection.password": SECRET_REF,
                                    "connection.url": "jdbc:postgresql://db:5432/${file:/mnt/db.properties:name}"}}})
    assert decl["pg"].config["connection.password"] == SECRET_REF
    assert decl["pg"].config["connection.url"] == "jdbc:postgresql://db:5432/${file:/mnt/db.properties:name}"
    # Connect reports the unresolved reference back in expand=info, so a declared reference shows no drift.
    data = fixture("healthy.json")
    data["jdbc-sink"]["info"]["config"]["connection.password"] = SECRET_REF
    cfg = worker_config("jdbc-sink", data)
    assert drift({"jdbc-sink": Declared("jdbc-sink", cfg)}, parse_expanded(data)) == []


def test_name_key_is_accepted_when_equal() -> None:
    decl = parse({"a": {"config": {"connector.class": "X", "name": "a"}, "state": "paused", "policy": "best-effort"}})
    assert (decl["a"].state, decl["a"].policy) == ("paused", "best-effort")
    assert "name" not in decl["a"].config


@pytest.mark.parametrize(("key", "value"), [("state", "PAUSED"), ("policy", "Best-Effort"), ("state", ""),
                                            ("state", None), ("policy", None), ("restartAttempts", None)])
def test_state_policy_and_restart_attempts_are_exact_as_in_the_chart_schema(key: str, value: Any) -> None:
    """The chart's schema takes the exact lowercase words and no null; the sidecar reads the file the same way
    (tests/chart/test_settings_agree.py sweeps every boundary against the schema)."""
    with pytest.raises(DeclarationError, match=rf"connector 'a': {key}: "):
        parse({"a": {"config": {"connector.class": "X"}, key: value}})


def test_a_whole_float_is_a_whole_number_as_in_json_schema() -> None:
    decl = parse({"a": {"config": {"connector.class": "X"}, "restartAttempts": 3.0}})
    assert decl["a"].restart_attempts == 3 and isinstance(decl["a"].restart_attempts, int)


def test_empty_file_declares_nothing() -> None:
    assert parse(None) == {} and parse({}) == {}


BAD = {
    "not-a-map": ([{"name": "a"}], "expected a map keyed by connector name"),
    "entry-not-a-map": ({"jdbc-sink": "FileStreamSink"}, "connector 'jdbc-sink': expected a map"),
    "no-config": ({"jdbc-sink": {"state": "running"}}, "connector 'jdbc-sink': config must be a map"),
    "config-list": ({"jdbc-sink": {"config": ["a=b"]}}, "connector 'jdbc-sink': config must be a map"),
    "no-class": ({"jdbc-sink": {"config": {"topics": "t"}}}, "connector 'jdbc-sink': config.connector.class"),
    "empty-class": ({"jdbc-sink": {"config": {"connector.class": ""}}},
                    "connector 'jdbc-sink': config.connector.class"),
    "bad-state": ({"jdbc-sink": {"config": {"connector.class": "X"}, "state": "sleeping"}},
                  "connector 'jdbc-sink': state: expected one of running, paused, stopped, got 'sleeping'"),
    "bad-policy": ({"jdbc-sink": {"config": {"connector.class": "X"}, "policy": "optional"}},
                   "connector 'jdbc-sink': policy: expected one of critical, best-effort, got 'optional'"),
    "unknown-key": ({"jdbc-sink": {"config": {"connector.class": "X"}, "polcy": "critical"}},
                    "connector 'jdbc-sink': unknown key 'polcy'"),
    "name-mismatch": ({"jdbc-sink": {"config": {"connector.class": "X", "name": "other"}}},
                      "connector 'jdbc-sink': config.name 'other' differs"),
    "empty-name": ({"": {"config": {"connector.class": "X"}}}, "connector names must be non-empty strings"),
    "int-name": ({7: {"config": {"connector.class": "X"}}}, "connector names must be non-empty strings, got 7"),
}


@pytest.mark.parametrize(("data", "message"), BAD.values(), ids=BAD.keys())
def test_bad_declarations_name_the_connector_and_key(data: Any, message: str) -> None:
    with pytest.raises(DeclarationError) as err:
        parse(data, "connectors.json")
    text = str(err.value)
    assert text.startswith("connectors.json: ") and message in text and "\n" not in text


def test_load_json_and_yaml_files(tmp_path: Path) -> None:
    yml = tmp_path / "connectors.yaml"
    yml.write_text("file-sink:\n  config:\n    connector.class: FileStreamSink\n    tasks.max: 1\n"
                   "    topics: lines\n  state: paused\n  policy: best-effort\n")
    jsn = tmp_path / "connectors.json"
    jsn.write_text(json.dumps({"file-sink": {"config": {"connector.class": "FileStreamSink", "tasks.max": 1,
                                                        "topics": "lines"}, "state": "paused",
                                             "policy": "best-effort"}}))
    assert load(str(yml)) == load(str(jsn))
    assert load(str(jsn))["file-sink"] == Declared("file-sink", {"connector.class": "FileStreamSink",
                                                                 "tasks.max": "1", "topics": "lines"},
                                                   "paused", "best-effort")


@pytest.mark.parametrize(("name", "text", "message"), [
    ("c.json", "{not json", "not valid JSON"),
    ("c.yaml", "a: [unclosed", "not valid YAML"),
    ("c.yaml", "a:\n  config:\n    topics: t\n", "connector 'a': config.connector.class is required"),
])
def test_load_errors_are_one_line_naming_the_file(tmp_path: Path, name: str, text: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(DeclarationError) as err:
        load(str(path))
    assert str(err.value).startswith(str(path)) and message in str(err.value) and "\n" not in str(err.value)


def test_load_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(DeclarationError, match="cannot read"):
        load(str(tmp_path / "missing.json"))


# --- drift ---------------------------------------------------------------------------------------------------

def declared_from_worker(data: dict[str, Any] | None = None) -> dict[str, Declared]:
    data = data or fixture("healthy.json")
    return {name: Declared(name, worker_config(name, data)) for name in data}


def test_no_drift_when_the_worker_holds_exactly_the_declaration() -> None:
    assert drift(declared_from_worker(), parse_expanded(fixture("healthy.json"))) == []


def test_no_drift_when_declared_ints_and_bools_match_connect_strings() -> None:
    cfg: dict[str, Any] = worker_config("jdbc-sink")
    cfg["tasks.max"] = 2  # YAML int; Connect answers "2"
    cfg["auto.create"] = True  # YAML bool; Connect answers "true"
    decl = parse({"jdbc-sink": {"config": cfg}})
    assert drift(decl, parse_expanded(fixture("healthy.json"))) == []


def test_missing_connector() -> None:
    decl = declared_from_worker()
    decl["ghost"] = Declared("ghost", {"connector.class": "FileStreamSource"})
    assert drift(decl, parse_expanded(fixture("healthy.json"))) == [
        ("ghost", "missing", "declared connector ghost is missing from the worker")]


def test_config_differs_names_keys_but_never_values() -> None:
    decl = declared_from_worker()
    cfg = dict(decl["jdbc-sink"].config)
    cfg["tasks.max"] = "4"
    cfg["connection.password"] = SECRET_REF  # worker still holds a literal password
    del cfg["pk.mode"]
    cfg["batch.size"] = "100"
    decl["jdbc-sink"] = Declared("jdbc-sink", cfg)
    found = drift(decl, parse_expanded(fixture("healthy.json")))
    assert [(n, k) for n, k, _ in found] == [("jdbc-sink", "config")]
    detail = found[0][2]
    assert detail == ("connector jdbc-sink config differs from the declaration "
                      "(keys: batch.size, connection.password, pk.mode, tasks.max)")
    assert "Sup3rS3cret" not in detail and SECRET_REF not in detail


def test_state_differs_but_failed_or_transient_is_not_drift() -> None:
    decl = declared_from_worker(fixture("paused_stopped.json"))
    snapshot = parse_expanded(fixture("paused_stopped.json"))
    assert [(n, k) for n, k, _ in drift(decl, snapshot)] == [("file-source", "state"), ("jdbc-sink", "state")]
    decl = {n: Declared(n, d.config, state) for (n, d), state in zip(sorted(decl.items()), ["paused", "stopped"],
                                                                    strict=True)}
    assert drift(decl, snapshot) == []
    running = declared_from_worker(fixture("failed_connector_local.json"))
    assert drift(running, parse_expanded(fixture("failed_connector_local.json"))) == []  # FAILED is health, not drift


def test_state_drift_detail() -> None:
    decl = declared_from_worker()
    decl["file-source"] = Declared("file-source", decl["file-source"].config, "stopped")
    assert drift(decl, parse_expanded(fixture("healthy.json"))) == [
        ("file-source", "state", "connector file-source is RUNNING, declared stopped")]


def test_no_config_drift_without_expand_info_and_none_without_a_snapshot() -> None:
    data = copy.deepcopy(fixture("healthy.json"))
    for entry in data.values():
        del entry["info"]  # a worker that ignored expand=info
    decl = declared_from_worker(fixture("healthy.json"))
    decl["jdbc-sink"] = Declared("jdbc-sink", {"connector.class": "Other"})
    assert drift(decl, parse_expanded(data)) == []
    assert drift(decl, None) == []


def test_undeclared_connectors_are_not_drift() -> None:
    decl = declared_from_worker()
    del decl["file-sink"]
    assert drift(decl, parse_expanded(fixture("healthy.json"))) == []


def test_restart_attempts_override_is_parsed_and_checked() -> None:
    out = parse({"cdc": {"config": {"connector.class": "X"}, "restartAttempts": 0},
                 "plain": {"config": {"connector.class": "X"}}})
    assert out["cdc"].restart_attempts == 0 and out["plain"].restart_attempts is None
    for bad in (-1, 101, "3", True, 1.5, float("nan"), [3]):
        with pytest.raises(DeclarationError, match=r"connector 'cdc': restartAttempts: "):
            parse({"cdc": {"config": {"connector.class": "X"}, "restartAttempts": bad}})



# --- a directory of shards (issue 19: the chart splits declarations past one ConfigMap's 1 MiB) -----------------

def kubelet_dir(root: Path, files: dict[str, str], generation: str = "..2026_01_01_00_00_00.000000001") -> Path:
    """A directory laid out as the kubelet writes a ConfigMap or projected volume: the files live in a timestamped
    directory, `..data` points at it, and each key is a symlink through `..data`."""
    root.mkdir(exist_ok=True)
    data = root / generation
    data.mkdir()
    for name, text in files.items():
        (data / name).write_text(text)
    tmp = root / "..data_tmp"
    tmp.symlink_to(generation)
    tmp.replace(root / "..data")
    for name in files:
        if not (root / name).is_symlink():
            (root / name).symlink_to(f"..data/{name}")
    return root


def shard(*names: str) -> str:
    return json.dumps({n: {"config": {"connector.class": "FileStreamSink", "topics": n}} for n in names})


def test_load_a_directory_reads_every_shard(tmp_path: Path) -> None:
    root = kubelet_dir(tmp_path / "decl", {"connectors.json": shard("a", "b"), "connectors-2.json": shard("c"),
                                           "connectors-3.json": "{}"})  # the chart pads with empty shards
    got = load(str(root))
    assert sorted(got) == ["a", "b", "c"]
    assert got["c"].config == {"connector.class": "FileStreamSink", "topics": "c"}


def test_load_a_directory_refuses_a_connector_declared_in_two_shards(tmp_path: Path) -> None:
    root = kubelet_dir(tmp_path / "decl", {"connectors.json": shard("a", "b"), "connectors-2.json": shard("b")})
    with pytest.raises(DeclarationError) as err:
        load(str(root))
    text = str(err.value)
    assert "'b'" in text and "connectors.json" in text and "connectors-2.json" in text and "\n" not in text


def test_load_a_directory_names_the_bad_shard(tmp_path: Path) -> None:
    root = kubelet_dir(tmp_path / "decl", {"connectors.json": shard("a"), "connectors-2.json": "{not json"})
    with pytest.raises(DeclarationError) as err:
        load(str(root))
    assert str(err.value).startswith(str(root / "connectors-2.json")) and "not valid JSON" in str(err.value)


def test_load_an_empty_directory_declares_nothing(tmp_path: Path) -> None:
    (tmp_path / "decl").mkdir()
    assert load(str(tmp_path / "decl")) == {}


# --- offsets as code (issue 20): the declared one-shot action -------------------------------------------------------

SINK_ITEM = {"partition": {"kafka_topic": "t", "kafka_partition": 0}, "offset": {"kafka_offset": 5}}
OFFSETS_CASES = [
    ({"request": "r1", "action": "reset"}, None),
    ({"request": "2026-12-06 replay", "action": "set", "offsets": [SINK_ITEM]}, None),
    ({"request": "r", "action": "set", "offsets": [{"partition": {"filename": "/x"}, "offset": None}]}, None),
    ("reset", "offsets: expected a map with request and action, got str"),
    ({"action": "reset"}, "offsets: request: expected a non-empty string (change it to ask for the action again), "
                          "got None"),
    ({"request": "  ", "action": "reset"}, "offsets: request: expected a non-empty string"),
    ({"request": 3, "action": "reset"}, "offsets: request: expected a non-empty string"),
    ({"request": "x" * 254, "action": "reset"}, "offsets: request: at most 253 characters, got 254"),
    ({"request": "r", "action": "rewind"}, "offsets: action: expected one of reset, set, got 'rewind'"),
    ({"request": "r", "action": "reset", "offsets": [SINK_ITEM]}, "offsets: offsets: only with action set"),
    ({"request": "r", "action": "set"}, "offsets: offsets: action set needs a non-empty list"),
    ({"request": "r", "action": "set", "offsets": []}, "offsets: offsets: action set needs a non-empty list"),
    ({"request": "r", "action": "set", "offsets": [{"partition": {"a": 1}}]},
     "offsets: offsets[0]: expected exactly the keys partition and offset, got ['partition']"),
    ({"request": "r", "action": "set", "offsets": [{"partition": {}, "offset": {}}]},
     "offsets: offsets[0]: partition: expected a non-empty map, got {}"),
    ({"request": "r", "action": "set", "offsets": [{"partition": {"a": 1}, "offset": 5}]},
     "offsets: offsets[0]: offset: expected a map (or null to clear it), got 5"),
    ({"request": "r", "action": "reset", "when": "now"}, "offsets: unknown key 'when' (allowed: request, action, "
                                                         "offsets)"),
]


@pytest.mark.parametrize(("offsets", "error"), OFFSETS_CASES)
def test_offsets_are_checked_with_one_line_per_error(offsets: Any, error: str | None) -> None:
    data = {"sink": {"config": {"connector.class": "FileStreamSink"}, "offsets": offsets}}
    if error is None:
        action = parse(data)["sink"].offsets
        assert action is not None and action.request == offsets["request"] and action.action == offsets["action"]
        assert list(action.offsets) == offsets.get("offsets", [])
        return
    with pytest.raises(DeclarationError) as err:
        parse(data)
    assert str(err.value).startswith(f"connectors file: connector 'sink': {error}"), str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(("offsets", "error"), OFFSETS_CASES)
def test_the_offsets_schema_agrees_with_the_parser(offsets: Any, error: str | None) -> None:
    """The chart's `connectors.*.offsets` schema (declared.offsets_schema) accepts exactly what parse accepts."""
    import jsonschema  # type: ignore[import-untyped]

    valid = jsonschema.Draft7Validator(offsets_schema()).is_valid(offsets)
    assert valid == (error is None), (offsets, error)


def test_offsets_need_a_connector_name_that_can_key_the_record() -> None:
    with pytest.raises(DeclarationError, match="the connector's name is where its done requests are recorded"):
        parse({"my sink": {"config": {"connector.class": "FileStreamSink"},
                           "offsets": {"request": "r", "action": "reset"}}})
    assert parse({"my sink": {"config": {"connector.class": "FileStreamSink"}}})["my sink"].offsets is None
