"""The one executor that performs every runbook action (see :mod:`.executor`), the plans it
shows before acting (:mod:`.plans`), what each action does (:mod:`.runners`) and the driver
Lease held for the whole driving session (:mod:`.session`)."""

from ivytui.sources.actions.errors import ActionFailed, GuardRefused, Stopped
from ivytui.sources.actions.executor import Act, Executor
from ivytui.sources.actions.plans import Outcome, Plan
from ivytui.sources.actions.session import DriverSession, console_identity

__all__ = [
    "Act",
    "ActionFailed",
    "DriverSession",
    "Executor",
    "GuardRefused",
    "Outcome",
    "Plan",
    "Stopped",
    "console_identity",
]
