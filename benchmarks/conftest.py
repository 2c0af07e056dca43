"""Benchmarks run on CPU with 2 threads (the project's reference machine)."""

import torch

torch.set_num_threads(2)


def pytest_terminal_summary(terminalreporter):
    from test_conv_layers import INTERLEAVED_CONV_RESULTS
    from test_dense_gnp_step import INTERLEAVED_GNP_RESULTS
    from test_dense_orthogonalization import INTERLEAVED_DENSE_RESULTS
    from test_layers import INTERLEAVED_RESULTS

    if INTERLEAVED_RESULTS:
        terminalreporter.section("eval forward overhead: lipot vs torch.nn, interleaved medians")
        terminalreporter.write_line(f"{'case':<16}{'torch.nn (ms)':>15}{'lipot (ms)':>13}{'ratio':>8}")
        for case, t_torch, t_lipot, ratio in INTERLEAVED_RESULTS:
            terminalreporter.write_line(f"{case:<16}{t_torch * 1e3:>15.3f}{t_lipot * 1e3:>13.3f}{ratio:>8.3f}")
    if INTERLEAVED_CONV_RESULTS:
        terminalreporter.section("convolutions, interleaved medians (ms) and ratio to torch.nn.Conv2d")
        for case, mode, medians in INTERLEAVED_CONV_RESULTS:
            base = medians["torch"]
            cells = "  ".join(f"{impl} {t * 1e3:.2f} ({t / base:.2f}x)" for impl, t in medians.items())
            terminalreporter.write_line(f"{case:<13}{mode:<6}{cells}")
    if INTERLEAVED_DENSE_RESULTS:
        terminalreporter.section("dense orthogonalization, interleaved train-step medians (ms), spectra")
        for case, result, spectra in INTERLEAVED_DENSE_RESULTS:
            cells = "  ".join(f"{impl} {t * 1e3:.1f}" for impl, t in result.items())
            sv = "  ".join(f"{impl} sigma in [{lo:.6f}, {hi:.6f}]" for impl, (lo, hi) in spectra.items())
            terminalreporter.write_line(f"{case:<11}{cells}   {sv}")
    if INTERLEAVED_GNP_RESULTS:
        terminalreporter.section("GNP dense train step, interleaved medians (ms), ratio to nn.Linear, eval spectra")
        for case, result, spectra in INTERLEAVED_GNP_RESULTS:
            base = result["nn.Linear"]
            cells = "  ".join(f"{impl} {t * 1e3:.2f} ({t / base:.2f}x)" for impl, t in result.items())
            terminalreporter.write_line(f"{case:<22}{cells}")
            sv = "  ".join(f"{impl} [{lo:.6f}, {hi:.6f}]" for impl, (lo, hi) in spectra.items())
            terminalreporter.write_line(f"{'':<22}sigma: {sv}")
