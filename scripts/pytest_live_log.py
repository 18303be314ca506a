"""pytest plugin for time-boxed runs (scripts/gpu_check.sh): appends each failure's traceback and
each test's duration to files as the reports arrive (xdist forwards them to the controller), so a
run killed by its time limit still leaves what it learned.

    PYTHONPATH=scripts pytest -p pytest_live_log ...   (LIVE_LOG_DIR: where to write, default .)
"""
import os

_DIR = os.environ.get("LIVE_LOG_DIR", ".")


def pytest_runtest_logreport(report):
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return  # the controller gets the same report: write it once
    if report.when == "call" or report.failed:
        with open(os.path.join(_DIR, "durations.txt"), "a") as f:
            f.write(f"{report.duration:8.2f} {report.outcome:7s} {report.when:8s} {report.nodeid}\n")
    if report.failed:
        with open(os.path.join(_DIR, "failures.txt"), "a") as f:
            f.write(f"===== {report.nodeid} ({report.when})\n{report.longreprtext}\n\n")
