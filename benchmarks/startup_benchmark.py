"""How long the package and the CLI take to start (issue 11, part 7).

    python benchmarks/startup_benchmark.py [--repeat 5]

Each row is a fresh process (median of --repeat runs, wall clock, seconds). `python -c pass` and
the import of pandas + pyarrow + SQLAlchemy are the baselines: what any Python start and the
data stack cost on this machine, so the package's own rows compare across machines. Targets:
`shivx-analytics --help` under 0.5 s and `import shivx_analytics` under 1 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

CLI = shutil.which("shivx-analytics", path=os.path.dirname(sys.executable)) or shutil.which("shivx-analytics")
CASES = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "python -c 'import pandas, pyarrow, sqlalchemy'": [sys.executable, "-c", "import pandas, pyarrow, sqlalchemy"],
    "python -c 'import shivx_analytics'": [sys.executable, "-c", "import shivx_analytics"],
    "shivx-analytics --help": [CLI, "--help"] if CLI else [sys.executable, "-m", "shivx_analytics.cli", "--help"],
    "shivx-analytics --version": [CLI, "--version"] if CLI else [sys.executable, "-m", "shivx_analytics.cli", "--version"],
}
TARGETS_S = {"python -c 'import shivx_analytics'": 1.0, "shivx-analytics --help": 0.5}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="fresh processes per row (median)")
    arguments = parser.parse_args()
    print(f"{'command':<50} {'median s':>9} {'min s':>7} {'max s':>7}  target")
    for name, command in CASES.items():
        seconds = [run_once(command) for _ in range(arguments.repeat)]
        target = TARGETS_S.get(name)
        verdict = "" if target is None else f"< {target} s {'ok' if statistics.median(seconds) < target else 'MISSED'}"
        print(f"{name:<50} {statistics.median(seconds):>9.3f} {min(seconds):>7.3f} {max(seconds):>7.3f}  {verdict}")
    print(f"\n{os.cpu_count()} CPUs, load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


def run_once(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
