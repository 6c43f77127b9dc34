"""``emox_edge.progress``: bars only on a terminal at INFO, silent under -q and when piped."""

from __future__ import annotations

import io
import logging
import sys

import pytest

from emox_edge.progress import bars_enabled, progress, progress_bytes


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def root_level():
    root = logging.getLogger()
    before = root.level
    yield root.setLevel
    root.setLevel(before)


def test_disabled_when_stderr_is_not_a_terminal(monkeypatch, root_level):
    root_level(logging.INFO)
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert not bars_enabled()
    with progress(total=3, desc="work") as bar:
        assert bar.disable
        bar.update(3)
    assert sys.stderr.getvalue() == ""


def test_disabled_at_warning_level_even_on_a_terminal(monkeypatch, root_level):
    monkeypatch.setattr(sys, "stderr", _Terminal())
    root_level(logging.WARNING)  # what `emox-edge -q` sets
    assert not bars_enabled()
    assert progress(total=3).disable and progress_bytes(10, "download").disable
    assert sys.stderr.getvalue() == ""


def test_enabled_on_a_terminal_at_info(monkeypatch, root_level):
    monkeypatch.setattr(sys, "stderr", _Terminal())
    root_level(logging.INFO)
    assert bars_enabled()
    with progress(total=2, desc="convert", unit="step") as bar:
        assert not bar.disable
        bar.update(2)
    assert "convert" in sys.stderr.getvalue() and "2/2" in sys.stderr.getvalue()
    assert progress(total=1, enabled=False).disable  # an API caller's progress=False always wins


def test_a_disabled_bar_still_iterates(monkeypatch, root_level):
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert list(progress(range(4), desc="x")) == [0, 1, 2, 3]


def test_progress_bytes_counts_bytes(monkeypatch, root_level):
    monkeypatch.setattr(sys, "stderr", _Terminal())
    root_level(logging.INFO)
    with progress_bytes(4 << 20, "download") as bar:
        bar.update(4 << 20)
    assert bar.unit == "B" and "4.00M" in sys.stderr.getvalue()


def test_log_records_go_through_tqdm_only_while_a_bar_is_open(monkeypatch, root_level):
    monkeypatch.setattr(sys, "stderr", _Terminal())
    root_level(logging.INFO)
    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stderr)
    root.addHandler(handler)
    try:
        outer = progress(total=1, desc="outer")
        inner = progress(total=1, desc="inner", leave=False)
        assert handler not in root.handlers  # replaced by tqdm's handler while bars are drawn
        outer.close()  # closing out of order keeps the redirection until the last bar closes
        assert handler not in root.handlers
        inner.close()
        assert handler in root.handlers
    finally:
        root.removeHandler(handler)
