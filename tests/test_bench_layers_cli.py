"""benchmarks/bench_layers.py refuses bad arguments with an argparse error naming the option
(exit code 2), before any layer is timed."""
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_layers.py"


@pytest.mark.parametrize("args, option", [
    (["--only", "no-such-net"], "--only"),
    (["--backend", "cuda"], "--backend"),
    (["--rounds", "0"], "--rounds"),
])
def test_bad_arguments_name_the_option(args, option):
    r = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2, r.stderr
    assert option in r.stderr and "Traceback" not in r.stderr
