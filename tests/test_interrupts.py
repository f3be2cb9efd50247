"""Ctrl-C held to safe points (harness.interrupts): raised where the code says, never
inside a library's callbacks, and the process's own handler put back afterwards."""

from __future__ import annotations

import os
import signal
import threading
import traceback
from typing import Iterator

import numpy as np
import pandas as pd
import pytest

from harness.interrupts import interruption_point, interrupts_held


@pytest.fixture(autouse=True)
def pythons_own_handler() -> Iterator[None]:
    """Python's SIGINT handler, as in a program started from a terminal: a suite started in
    the background inherits SIGINT ignored, and a Spark session installs its own."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def ctrl_c() -> None:
    """SIGINT to this process; Python runs its handler before the next bytecode."""
    os.kill(os.getpid(), signal.SIGINT)


def test_a_held_interrupt_is_raised_at_the_next_interruption_point_only() -> None:
    steps = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts_held():
            ctrl_c()
            steps.append("after the signal")  # still running: the interrupt is held
            interruption_point()
            steps.append("after the point")  # never reached
    assert steps == ["after the signal"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_held_interrupt_with_no_point_is_raised_when_the_block_ends() -> None:
    done = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts_held():
            ctrl_c()
            done.append(True)
    assert done == [True]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_no_interrupt_leaves_nothing_pending() -> None:
    with interrupts_held():
        interruption_point()
    interruption_point()  # nothing held, nothing raised
    with pytest.raises(KeyboardInterrupt):  # Python's own behaviour is back
        ctrl_c()
        for _ in range(1000):
            pass


def test_nested_blocks_share_the_outer_hold() -> None:
    reached = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts_held():
            with interrupts_held():
                ctrl_c()
            reached.append("inner block ended without raising")
            interruption_point()
    assert reached == ["inner block ended without raising"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_outside_the_main_thread_the_block_runs_unchanged() -> None:
    seen = []

    def worker() -> None:
        with interrupts_held():
            seen.append(signal.getsignal(signal.SIGINT))

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert seen == [signal.default_int_handler]


def test_a_worker_thread_inside_a_held_block_leaves_the_hold_to_the_main_thread() -> None:
    """A model fitted in a worker thread that starts while the main thread holds and ends
    after it: the worker's block neither keeps the hold nor touches the handler (only the
    main thread may)."""
    import threading

    entered, main_done, errors = threading.Event(), threading.Event(), []

    def worker() -> None:
        try:
            with interrupts_held():
                entered.set()
                main_done.wait(10)
        except BaseException as exc:  # e.g. ValueError: signal only works in main thread
            errors.append(exc)

    t = threading.Thread(target=worker)
    with interrupts_held():
        t.start()
        entered.wait(10)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # released on time
    main_done.set()
    t.join()
    assert errors == []
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_program_with_its_own_handler_keeps_it() -> None:
    calls = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: calls.append(signum))
    try:
        with interrupts_held():
            ctrl_c()
            interruption_point()  # the program's handler ran instead: nothing held
        assert calls == [signal.SIGINT]
    finally:
        signal.signal(signal.SIGINT, previous)


def test_ctrl_c_stops_pytorch_training_between_minibatches() -> None:
    """Ctrl-C during BPR-MF training surfaces at an interruption point (plain Python), not
    wherever PyTorch runs, and the thread and determinism settings are put back."""
    import torch

    from harness.models.mf import BPRMF

    rng = np.random.default_rng(0)
    train = pd.DataFrame({"user_id": rng.integers(0, 300, 6000), "item_id": rng.integers(0, 200, 6000)})
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    timer = threading.Timer(0.3, ctrl_c)
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt) as caught:
            # about a minute of training, were the interrupt lost; stopped after 0.3 s otherwise
            BPRMF(dim=8, n_epochs=3000, batch_size=512).fit(train, n_users=300, n_items=200)
    finally:
        timer.cancel()
    innermost = traceback.extract_tb(caught.value.__traceback__)[-1]
    assert innermost.name == "interruption_point"
    assert torch.get_num_threads() == threads
    assert torch.are_deterministic_algorithms_enabled() == deterministic
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
