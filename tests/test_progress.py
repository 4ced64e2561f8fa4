import io

import pytest

from supervised_reptile.progress import Progress, format_duration, wanted


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_bar_shows_rate_and_eta_of_this_process_only():
    clock, out = _Clock(), io.StringIO()
    bar = Progress("train", 100, start=40, stream=out, clock=clock, min_interval=0)
    clock.now = 10.0
    bar.update(60)  # 20 iterations in 10 s -> 2 it/s, 40 left -> 20 s
    assert bar.line() == "train 60/100  60% [############........] 2.00 it/s ETA 0:20"
    assert out.getvalue().startswith("\rtrain 60/100")
    bar.close()
    assert out.getvalue().endswith("\n")


def test_logging_clears_and_redraws_the_bar():
    clock, out, lines = _Clock(), io.StringIO(), []
    bar = Progress("eval", 4, stream=out, clock=clock, min_interval=0)
    bar.update(1)
    log = bar.wrap(lambda line: lines.append((line, out.getvalue())))
    log("batch 0: train=1 test=1")
    before = lines[0][1]
    assert before.endswith("\r")  # the bar was erased before the line was printed
    assert out.getvalue().endswith("eval 1/4  25% [#####...............]")


def test_disabled_bar_writes_nothing_and_auto_follows_the_terminal():
    out = io.StringIO()
    bar = Progress("train", 10, stream=out, enabled=False)
    bar.update(5)
    bar.close()
    bar.wrap(lambda _: None)("x")
    assert out.getvalue() == ""
    assert wanted("auto", out) is False and wanted("on", out) and not wanted("off", out)
    with pytest.raises(ValueError, match="mode 'sometimes'"):
        wanted("sometimes", out)


def test_durations():
    assert format_duration(59.6) == "1:00"
    assert format_duration(3600 + 61) == "1:01:01"
