"""history.py: restart counts and the last restarts per connector, bounded by the live connectors."""

from __future__ import annotations

from connect_health.history import GONE_GRACE, LAST, RestartHistory


def test_a_deleted_connector_is_forgotten_after_the_grace_and_a_returning_one_is_kept() -> None:
    h = RestartHistory()
    for i in range(2000):
        h.sent(f"c{i}", "requested", 1.0)
    h.sent("live", "error", 1.0)
    h.forget_gone({"live", "c7"}, now=0.0)
    assert len(h.counts) == 2001  # within the grace: kept
    h.forget_gone({"live"}, now=GONE_GRACE / 2)  # c7 deleted now
    h.forget_gone({"live"}, now=GONE_GRACE)
    assert set(h.counts) == {("live", "error"), ("c7", "requested")} and set(h.last) == {"c7"}
    h.forget_gone({"live", "c7"}, now=GONE_GRACE * 1.4)  # c7 came back before its grace ended
    h.forget_gone({"live", "c7"}, now=GONE_GRACE * 3)
    assert ("c7", "requested") in h.counts


def test_only_requested_restarts_are_history_and_it_keeps_the_last_few() -> None:
    h = RestartHistory()
    for t in range(LAST + 3):
        h.sent("a", "requested", float(t))
    h.sent("a", "conflict", 99.0)
    h.note("a", 100.0, "pod", "Connect restarted")
    assert [e[0] for e in h.last["a"]] == [4.0, 5.0, 6.0, 7.0, 100.0]
    assert h.counts == {("a", "requested"): LAST + 3, ("a", "conflict"): 1}
