"""Benchmarks run on CPU with 2 threads (the project's reference machine)."""

import torch

torch.set_num_threads(2)


def pytest_terminal_summary(terminalreporter):
    from test_layers import INTERLEAVED_RESULTS

    if not INTERLEAVED_RESULTS:
        return
    terminalreporter.section("eval forward overhead: lipot vs torch.nn, interleaved medians")
    terminalreporter.write_line(f"{'case':<16}{'torch.nn (ms)':>15}{'lipot (ms)':>13}{'ratio':>8}")
    for case, t_torch, t_lipot, ratio in INTERLEAVED_RESULTS:
        terminalreporter.write_line(f"{case:<16}{t_torch * 1e3:>15.3f}{t_lipot * 1e3:>13.3f}{ratio:>8.3f}")
