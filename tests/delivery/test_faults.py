"""The fault suite (issue 14): no subscriber, a full disk, a read-only remount, SIGTERM on a full disk, a truncated
outbox, power cuts. Real mosquitto, real files, real small file systems; each prints its figures
(``bench/faults_bench.py`` runs the long versions and prints the table).

A small file system needs root (``mount``); where it cannot be had the test skips and says why (as a hardware
test does: a CI container may not be allowed to mount).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.delivery import faults
from tests.delivery.conftest import need_mosquitto
from tests.delivery.faults import Figures, Unavailable

#: systemd's TimeoutStopSec in systemd/store-agent.service.
STOP_TIMEOUT_S = 20.0


def run(scenario: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    need_mosquitto()
    try:
        result = scenario(*args, **kwargs)
    except Unavailable as exc:
        pytest.skip(str(exc))
    for figures in result if isinstance(result, list) else [result]:
        print(f"\n{faults.HEADER}\n{figures.row()}")
    return result


def assert_nothing_lost(figures: Figures) -> None:
    assert figures.accepted > 0
    assert figures.lost == 0 and figures.delivered == figures.accepted, figures.row()


@pytest.mark.parametrize("ack", ["broker", "hub"])
def test_no_subscriber_for_a_while_then_one_appears(tmp_path: Path, ack: str) -> None:
    figures = run(faults.no_subscriber, tmp_path, 5.0, ack=ack)
    assert_nothing_lost(figures)
    assert figures.notes["health said"] == "'no subscriber'" and figures.notes["waiting when it came"] > 100
    assert figures.recover_s is not None and figures.recover_s < 15.0


def test_disk_full_then_space_returns(tmp_path: Path) -> None:
    figures = run(faults.disk_full, tmp_path, 5.0)
    assert_nothing_lost(figures)
    assert figures.notes["threads alive"] is True, "no worker, device, MQTT or commit thread died"
    assert figures.notes["hub heard full/ok"] == "True/True"
    assert "storage 'full'" in figures.notes["health said"]
    assert figures.notes["dropped"] == 0
    assert figures.recover_s is not None and figures.recover_s < 15.0


def test_read_only_remount_is_a_state_and_the_stop_stays_in_time(tmp_path: Path) -> None:
    figures = run(faults.read_only, tmp_path, 3.0)
    assert figures.notes["threads alive"] is True and figures.notes["hub heard it"] is True
    assert figures.notes["health said"] == "storage 'read-only'"
    assert figures.notes["stop took s"] < STOP_TIMEOUT_S - 5
    assert_nothing_lost(figures)  # what the disk refused went out from memory at the stop


def test_sigterm_on_a_full_disk_exits_in_time(tmp_path: Path) -> None:
    figures = run(faults.sigterm_on_full_disk, tmp_path, 5.0)
    assert figures.notes["exit"] == 0 and figures.notes["tracebacks"] == 0
    assert figures.notes["stop took s"] < STOP_TIMEOUT_S - 5, "well inside systemd's TimeoutStopSec"
    assert_nothing_lost(figures)


@pytest.mark.slow
@pytest.mark.parametrize("ack", ["broker", "hub"])
def test_no_subscriber_for_30_s(tmp_path: Path, ack: str) -> None:
    assert_nothing_lost(run(faults.no_subscriber, tmp_path, 30.0, ack=ack))


@pytest.mark.slow
def test_disk_full_for_30_s(tmp_path: Path) -> None:
    figures = run(faults.disk_full, tmp_path, 30.0)
    assert_nothing_lost(figures)
    assert figures.notes["threads alive"] is True and figures.notes["dropped"] == 0


@pytest.mark.slow
def test_outbox_truncated_at_10_random_offsets_then_started(tmp_path: Path) -> None:
    """What the kept pages hold reaches the hub; what was cut off is counted at start (an upper bound), never
    silently gone."""
    for figures in run(faults.truncated_outbox, tmp_path, 10):
        assert figures.delivered == figures.notes["salvaged"], figures.row()
        assert figures.notes["counted unreadable<="] >= figures.lost, figures.row()
        assert figures.notes["not from this run"] == 0


@pytest.mark.slow
def test_power_cut_at_20_random_points(tmp_path: Path) -> None:
    figures = run(faults.power_cuts, tmp_path, 20)
    assert_nothing_lost(figures)
    assert figures.notes["outbox sound after every cut"] is True
