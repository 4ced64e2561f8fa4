import io

import pytest

from conftest import make_omniglot, run_script
from supervised_reptile.progress import Progress, format_duration, wanted


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class _Tty(io.StringIO):
    """A terminal: `progress` "auto" draws on it."""

    def isatty(self):
        return True


def _screen(text: str) -> list[str]:
    """The lines a terminal shows for `text` (`\\r` returns to the line's start)."""
    lines, col = [[]], 0
    for ch in text:
        if ch == "\r":
            col = 0
        elif ch == "\n":
            lines.append([])
            col = 0
        else:
            line = lines[-1]
            line[col:col + 1] = [ch]
            col += 1
    return ["".join(line).rstrip() for line in lines]


def _frames(text: str, label: str) -> list[str]:
    """Every frame of bar `label` drawn in `text`."""
    return [f.rstrip() for line in text.split("\n") for f in line.split("\r")
            if f.startswith(label + " ")]


def test_eta_leaves_out_the_slow_first_update():
    clock, out = _Clock(), _Tty()
    bar = Progress("train", 200, stream=out, clock=clock, enabled=wanted("auto", out))
    clock.now = 60.0  # the first meta-iteration traces and compiles
    bar.update(1)
    assert bar.line().endswith("-- it/s ETA --:--")
    for done in range(2, 101):
        clock.now += 0.1
        bar.update(done)
    # 10 it/s with 100 to go; counting the first minute would say 100 / 69.9 s.
    assert bar.line() == "train 100/200  50% [##########..........] 10.00 it/s ETA 0:10"
    assert _frames(out.getvalue(), "train")[0] == \
        "train 1/200   0% [....................] -- it/s ETA --:--"


def test_rate_follows_the_recent_updates():
    clock, out = _Clock(), _Tty()
    bar = Progress("train", 1000, stream=out, clock=clock, window=30.0)
    bar.update(1)
    clock.now += 100.0  # one slow step (a retrace) after the first
    bar.update(2)
    for done in range(3, 603):
        clock.now += 0.1
        bar.update(done)
    # The last 30 s of updates: 0.1 s each; the slow step has left the window.
    assert bar.rate() == pytest.approx(10.0)
    assert bar.line().endswith("10.00 it/s ETA 0:40")


def test_resumed_bar_counts_only_this_process():
    clock, out = _Clock(), _Tty()
    bar = Progress("train", 100, start=40, stream=out, clock=clock, min_interval=0, skip=0)
    clock.now = 10.0
    bar.update(60)  # 20 iterations in 10 s -> 2 it/s, 40 left -> 20 s
    assert bar.line() == "train 60/100  60% [############........] 2.00 it/s ETA 0:20"


def test_final_frame_reads_total_and_100_percent():
    clock, out = _Clock(), _Tty()
    bar = Progress("train", 200, stream=out, clock=clock)  # redraws at most every 0.2 s
    for done in range(1, 200):
        clock.now += 0.03
        bar.update(done)
        if done == 199:
            assert bar.line().startswith("train 199/200  99% ")  # rounded down
    clock.now += 0.03
    bar.update(200)
    bar.close()
    assert out.getvalue().endswith("\n")
    last = _frames(out.getvalue(), "train")[-1]
    assert last.startswith("train 200/200 100% [####################] ")
    assert last.endswith(" ETA 0:00")
    assert _screen(out.getvalue()) == [last, ""]


def test_training_loop_ends_its_bar_at_total():
    from supervised_reptile.train import train  # imports TensorFlow

    class _Learner:
        def meta_step(self, batch, step):
            clock.now += 0.5
            return {"loss": 1.0}

    clock, out, logged = _Clock(), _Tty(), []
    bar = Progress("train", 20, start=5, stream=out, clock=clock)
    log = bar.wrap(logged.append)
    done = train(_Learner(), iter(range(100)), {}, lambda i: None, meta_iters=20, meta_step=1.0,
                 meta_step_final=0.0, eval_interval=5, num_classes=5, start_iteration=5,
                 log_fn=log, progress=bar)
    bar.close()
    assert done == 20 and logged == ["batch 5: ", "batch 10: ", "batch 15: "]
    # Iterations 6..20 took 0.5 s each.
    assert _screen(out.getvalue())[-2].startswith(
        "train 20/20 100% [####################] 2.00 it/s")


def test_logged_lines_get_their_own_line_and_the_bar_is_redrawn():
    clock, out = _Clock(), _Tty()
    bar = Progress("eval", 4, stream=out, clock=clock, min_interval=0)
    # stdout and stderr share the terminal: the log writes where the bar draws.
    log = bar.wrap(lambda line: out.write(line + "\n"))
    assert out.getvalue() == ""  # no frame before the first update
    log("Evaluating...")
    assert out.getvalue() == "Evaluating...\n"  # nor after a line logged before it
    bar.update(1)
    log("batch 0: train=1 test=1")
    assert _screen(out.getvalue()) == ["Evaluating...", "batch 0: train=1 test=1",
                                       "eval 1/4  25% [#####...............] -- it/s ETA --:--"]
    bar.update(4)
    bar.close()
    assert _screen(out.getvalue())[1:] == ["batch 0: train=1 test=1",
                                           "eval 4/4 100% [####################] -- it/s ETA 0:00",
                                           ""]


def test_closing_a_bar_that_never_drew_writes_nothing():
    out = _Tty()
    bar = Progress("train", 10, stream=out)
    bar.close()
    assert out.getvalue() == ""


def test_disabled_bar_writes_nothing_and_auto_follows_the_terminal():
    out, lines = io.StringIO(), []
    bar = Progress("train", 10, stream=out, enabled=wanted("auto", out))
    bar.update(5)
    bar.wrap(lines.append)("x")
    bar.update(10)
    bar.close()
    assert out.getvalue() == "" and lines == ["x"]
    assert wanted("auto", out) is False and wanted("on", out) and not wanted("off", out)
    assert wanted("auto", _Tty())
    with pytest.raises(ValueError, match="mode 'sometimes'"):
        wanted("sometimes", out)


def test_durations():
    assert format_duration(59.6) == "1:00"
    assert format_duration(3600 + 61) == "1:01:01"


@pytest.mark.slow
def test_run_script_draws_bars_that_end_at_100_percent(tmp_path):
    data = make_omniglot(tmp_path / "omni", alphabets=3, characters=5)
    out = run_script("run_omniglot.py", "--data-dir", data, "--checkpoint", "ck",
                     "--progress", "on", "--train-characters", "10", "--shots", "1",
                     "--train-shots", "3", "--meta-iters", "20", "--eval-interval", "10",
                     "--eval-samples", "5", "--eval-iters", "2", "--inner-iters", "2",
                     "--meta-batch", "2", "--eval-tasks-at-once", "2", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    # text=True turned the bars' carriage returns into newlines.
    assert not _frames(out.stdout, "train") and not _frames(out.stdout, "eval train")
    trained = _frames(out.stderr, "train")
    # The first frame comes at the first update, when no rate can be trusted yet.
    assert trained[0].startswith("train 1/20 ") and trained[0].endswith(" ETA --:--"), out.stderr
    for label, total in (("train", 20), ("eval train", 5), ("eval test", 5)):
        last = _frames(out.stderr, label)[-1]
        assert last.startswith(f"{label} {total}/{total} 100% "), (label, out.stderr)
