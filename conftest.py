"""Root pytest configuration: the ``--benchmark`` flag.

``pytest`` runs the test suite in tests/ and times nothing. ``pytest --benchmark`` runs the
benchmark suite in benchmarks/ (pytest-benchmark), each fastinit backend beside NumPy and
PyTorch in the same group. Stock pytest-benchmark has only ``--benchmark-*`` options, so the
bare flag is registered here.
"""
import os

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH_DIR = os.path.join(HERE, "benchmarks")


def pytest_addoption(parser):
    parser.addoption("--benchmark", action="store_true", default=False,
                     help="run the benchmark suite in benchmarks/ (opt-in; slow)")




def pytest_ignore_collect(collection_path, config):
    """Without --benchmark, benchmarks/ is not collected; with it, tests/ is not (unless named)."""
    path = str(collection_path)
    bench = config.getoption("--benchmark")
    if path.startswith(BENCH_DIR):
        return None if bench else True
    if bench and path.startswith(os.path.join(HERE, "tests")) and not _named(config, "tests"):
        return True
    return None


def _named(config, folder):
    return any(os.path.abspath(str(a)).startswith(os.path.join(HERE, folder))
               for a in config.invocation_params.args if not str(a).startswith("-"))
