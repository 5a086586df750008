"""The streaming trace cutter (issue 18, item 3): for random answers and random chunkings, cutting then parsing
gives what parsing then cutting the traces gives, and the kept traces are short."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any

from connect_health.snapshot import MAX_TRACE_CHARS, parse_answer
from connect_health.tracecut import TraceCut
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# Traces with what makes cutting hard: quotes, backslash runs, control characters (escaped), any unicode
# (multi-byte UTF-8, astral characters as surrogate pairs with ensure_ascii), lone surrogates.
TEXT = st.text(alphabet=st.one_of(st.sampled_from('"\\\n\t/\x00\x1fé€😀 a'), st.characters()), max_size=60)
NAMES = st.one_of(st.sampled_from(["status", "trace", "tasks", "connector", "info", 'a"b', "x\\", ""]), TEXT)
JUNK = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), TEXT),
                    lambda inner: st.one_of(st.lists(inner, max_size=3),
                                            st.dictionaries(NAMES, inner, max_size=3)), max_leaves=8)


def unit(trace: st.SearchStrategy[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({"state": st.sampled_from(["RUNNING", "FAILED", "UNASSIGNED"]),
                                  "worker_id": st.sampled_from(["w1:8083", "w2:8083"])},
                                 optional={"trace": trace, "junk": JUNK})


def answer(trace: st.SearchStrategy[str]) -> st.SearchStrategy[dict[str, Any]]:
    tasks = st.lists(unit(trace), max_size=3).map(lambda ts: [{"id": i, **t} for i, t in enumerate(ts)])
    status = st.fixed_dictionaries({"connector": unit(trace), "tasks": tasks,
                                    "type": st.sampled_from(["source", "sink"])},
                                   optional={"trace": trace, "name": NAMES})
    # a config value named "trace", a "trace" key at other depths: never cut
    info = st.fixed_dictionaries({"config": st.dictionaries(st.sampled_from(["trace", "topics", "file"]), trace)})
    entry = st.fixed_dictionaries({"status": status}, optional={"info": info, "trace": trace})
    return st.dictionaries(NAMES, entry, max_size=4)


def encode(doc: Any, ascii_only: bool, spaced: bool) -> bytes:
    text = json.dumps(doc, ensure_ascii=ascii_only, separators=(", ", ": ") if spaced else (",", ":"))
    return text.encode("utf-8", "surrogatepass" if not ascii_only else "strict")


def chunked(data: bytes, cuts: list[int]) -> Iterator[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    start = 0
    for p in [*points, len(data)]:
        yield data[start:p]
        start = p


def cut_all(data: bytes, cuts: list[int] | None, keep: int) -> bytes:
    """``cuts``: where the chunks end (any order, wrapped), or None for one byte per chunk."""
    f = TraceCut(keep)
    chunks = chunked(data, cuts) if cuts is not None else (data[i:i + 1] for i in range(len(data)))
    return b"".join([*(f.feed(c) for c in chunks), f.close()])


CHUNKINGS = st.one_of(st.none(), st.lists(st.integers(min_value=0), max_size=12))


def traces(doc: Any) -> Iterator[tuple[tuple[Any, ...], str]]:
    """(path, value) of every string where Connect puts a trace."""
    if not isinstance(doc, dict):
        return
    for name, entry in doc.items():
        status = entry.get("status") if isinstance(entry, dict) else None
        if not isinstance(status, dict):
            continue
        conn = status.get("connector")
        if isinstance(conn, dict) and isinstance(conn.get("trace"), str):
            yield (name, "connector"), conn["trace"]
        tasks = status.get("tasks")
        for i, t in enumerate(tasks if isinstance(tasks, list) else []):
            if isinstance(t, dict) and isinstance(t.get("trace"), str):
                yield (name, i), t["trace"]


def without_traces(doc: Any) -> Any:
    doc = json.loads(json.dumps(doc))
    for (name, where), _ in list(traces(doc)):
        status = doc[name]["status"]
        (status["connector"] if where == "connector" else status["tasks"][where])["trace"] = None
    return doc


def safe_text(ascii_only: bool) -> st.SearchStrategy[str]:
    return TEXT if ascii_only else TEXT.map(lambda s: s.encode("utf-8", "replace").decode("utf-8", "replace"))


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), st.booleans(), st.booleans(), CHUNKINGS, st.integers(min_value=1, max_value=30))
def test_cutting_then_parsing_is_parsing_then_cutting(data: st.DataObject, ascii_only: bool, spaced: bool,
                                                      cuts: list[int] | None, keep: int) -> None:
    doc = data.draw(answer(safe_text(ascii_only)))
    raw = encode(doc, ascii_only, spaced)
    kept = cut_all(raw, cuts, keep)
    got = json.loads(kept)
    assert without_traces(got) == without_traces(doc)  # everything else, config "trace" values included, whole
    before, after = dict(traces(doc)), dict(traces(got))
    assert before.keys() == after.keys()
    for path, full in before.items():
        short = after[path]
        assert full.startswith(short), (path, full, short)  # a true prefix, never a broken escape or pair
        assert len(short) >= min(len(full), keep)  # what the parser keeps is all there
        assert len(short) <= keep + 24  # and little more than that


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(CHUNKINGS, JUNK, st.booleans())
def test_answers_of_any_other_shape_pass_through_unchanged(cuts: list[int] | None, doc: Any, spaced: bool) -> None:
    raw = encode(doc, True, spaced)
    assert cut_all(raw, cuts, 1) == raw or list(traces(doc))


def long_trace() -> st.SearchStrategy[str]:
    """Traces around MAX_TRACE_CHARS long: a random piece repeated."""
    return st.tuples(safe_text(False), st.integers(min_value=0, max_value=MAX_TRACE_CHARS + 200)).map(
        lambda p: (p[0] or "x") * (p[1] // max(1, len(p[0] or "x")) + 1))


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data(), st.booleans(), st.lists(st.integers(min_value=0), max_size=20),
       st.sampled_from([None, "w1:8083"]))
def test_the_snapshot_of_a_cut_answer_is_the_snapshot_of_the_whole(data: st.DataObject, ascii_only: bool,
                                                                   cuts: list[int], worker: str | None) -> None:
    doc = data.draw(answer(long_trace()))
    raw = encode(doc, ascii_only, False)
    kept = cut_all(raw, cuts, MAX_TRACE_CHARS)
    whole, cut = parse_answer(raw, worker_id=worker), parse_answer(kept, worker_id=worker)
    assert dataclasses.replace(cut, listing=None) == dataclasses.replace(whole, listing=None)
    if whole.listing is not None:
        assert cut.listing is not None and parse_answer(cut.listing) == parse_answer(whole.listing)


def test_a_100_kb_trace_keeps_a_few_kb() -> None:
    trace = "java.sql.SQLException: connection refused\n" + "\tat org.example.Frame.call(Frame.java:42)\n" * 2500
    doc = {"sink": {"status": {"connector": {"state": "RUNNING", "worker_id": "w:1"}, "type": "sink",
                               "tasks": [{"id": 0, "state": "FAILED", "worker_id": "w:1", "trace": trace}]}}}
    raw = json.dumps(doc).encode()
    kept = cut_all(raw, list(range(0, len(raw), 1000)), MAX_TRACE_CHARS)
    assert len(raw) > 100_000 and len(kept) < MAX_TRACE_CHARS + 500
    short = json.loads(kept)["sink"]["status"]["tasks"][0]["trace"]
    assert trace.startswith(short) and short.splitlines()[0] == "java.sql.SQLException: connection refused"
