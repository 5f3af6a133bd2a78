"""``mynacard doctor``: the checks (:mod:`.engine`, over a simulated or the real
environment), what they ask the machine (:mod:`.probes`) and the command (:mod:`.cli`)."""

from harness.doctor.engine import Environment, Result, Status, exit_status, run_checks

__all__ = ["Environment", "Result", "Status", "exit_status", "run_checks"]
