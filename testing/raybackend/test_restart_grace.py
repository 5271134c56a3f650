"""How long the lease sweep leaves a restarting host's orphans to it (no Ray needed)."""

from __future__ import annotations

from flue_actors._runtime.ray.backend import OWNER_RESTART_SECONDS, _RestartGrace

GRACE = OWNER_RESTART_SECONDS


def test_a_restart_is_waited_for_until_the_grace_from_its_first_sighting() -> None:
    grace = _RestartGrace()
    sweeps = [0.0, 5.0, GRACE - 1, GRACE, GRACE + 5]
    assert [grace.waits_for("host-a", 1000.0 + at) for at in sweeps] == [
        True,
        True,
        True,
        False,
        False,
    ]
    assert grace.waits_for("host-b", 1000.0 + GRACE + 5) is True  # each host its own


def test_a_later_restart_gets_the_whole_grace_again() -> None:
    grace = _RestartGrace()
    assert grace.waits_for("host-a", 0.0) is True
    # The host came back and served for hours (no sweep asked it, so nothing cleared it).
    assert grace.waits_for("host-a", 3 * 3600.0) is True
    assert grace.waits_for("host-a", 3 * 3600.0 + GRACE - 1) is True


def test_an_answer_ends_the_restart() -> None:
    grace = _RestartGrace()
    assert grace.waits_for("host-a", 0.0) is True
    assert grace.waits_for("host-a", GRACE) is False
    grace.answered("host-a")
    assert grace.waits_for("host-a", GRACE + 1) is True
