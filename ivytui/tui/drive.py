"""The action flow: a key, the verdict of its guard, the plan in the one confirm modal, the
executor, its progress on the line above the footer and how it ended; the takeover of the driver
Lease; the question before quitting while an action runs; the notice of actions that an earlier
console started and never finished.

The keys are made here from the domain's table of actions (``ivytui.domain.actions``): a key,
its footer label, its help line, the runbook's key column and its guard are one entry there. The
verdict the key showed is the one the confirm modal lists and the one handed to the executor,
which checks the same guard again at the moment it acts.

:class:`Drive` holds the state of the flow; the app routes keys and messages to it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.binding import Binding

from ivytui.domain.actions import ACTION_OF_STEP, ACTIONS, BY_ID, NO_ACTION, Verdict, check
from ivytui.domain.runbook import Check
from ivytui.errors import IvyError
from ivytui.tui.driving import (
    Ended,
    Running,
    conflict_hint,
    done_markup,
    failed_markup,
    interrupted_markup,
    quit_question,
    running_markup,
    take_over_question,
)
from ivytui.tui.messages import (
    ActionDone,
    ActionError,
    ActionProgress,
    ActionsInterrupted,
    Reason,
)
from ivytui.tui.protocols import ExecutorLike, PlanLike

if TYPE_CHECKING:
    from ivytui.tui.app import IvyApp
    from ivytui.tui.screens.confirm import ConfirmScreen

TAKE_OVER = "take-over"
TAKE_OVER_TITLE = "take over driving"

DRIVE_BINDINGS: tuple[Binding, ...] = (
    *(
        Binding(spec.key, f"act({spec.id!r})", spec.label, id=spec.id, tooltip=spec.help)
        for spec in ACTIONS
    ),
    Binding(
        "T",
        "take_over",
        "Take over",
        id=TAKE_OVER,
        tooltip="Take the driver Lease from another console (type the cluster name)",
        # rare, and the footer is full at 160 columns: in the help and the palette instead
        show=False,
    ),
)
"""One binding per action of the domain's table (``act('freeze')``), and the takeover."""

DRIVE_IDS = frozenset({*BY_ID, TAKE_OVER, "act-on-step"})
"""The binding ids of the keys that drive the move (the help shows their tooltips in full)."""


def mutates(action: str, parameters: tuple[object, ...]) -> bool:
    """Whether the app's ``action`` (with its ``parameters``) can change a cluster: MONITOR mode
    disables exactly these."""
    if action == "act":
        found = BY_ID.get(str(parameters[0])) if parameters else None
        return found is None or found.mutates
    return action in ("act_on_step", "take_over")


def reasons_of(exc: IvyError) -> tuple[Reason, ...]:
    """The checks an executor's refusal carries (``GuardRefused.checks``): sentences, or checks
    with their colour."""
    checks = getattr(exc, "checks", ())
    if not isinstance(checks, tuple | list):
        return ()
    found: list[Reason] = []
    for item in checks:
        if isinstance(item, Check | str):
            found.append(item)
        elif hasattr(item, "ok") and hasattr(item, "text"):
            found.append(Check(bool(item.ok), str(item.text)))
        else:
            found.append(str(item))
    return tuple(found)


class Drive:
    """The state of the action flow of one app: the action under way, how the last one ended,
    the interrupted actions found at start."""

    def __init__(self, app: IvyApp) -> None:
        self.app = app
        self.running: Running | None = None
        self.last_ended: Ended | None = None
        self.interrupted: tuple[str, ...] = ()
        self._asking_quit: ConfirmScreen | None = None

    # -- keys --------------------------------------------------------------------------------

    def _executor_now(self, *, need_view: bool = True) -> ExecutorLike | None:
        """The executor if a key may start something now; else say why and ``None``."""
        app = self.app
        if app.read_only:
            app.notify("MONITOR mode: no key changes anything", severity="warning", timeout=4)
            return None
        if self.running is not None:
            app.notify(
                f"wait: “{self.running.title}” is still running ({self.running.stage})",
                severity="warning",
                timeout=5,
            )
            return None
        if app.executor is None:
            why = app.executor_error or "the sources are still starting"
            app.notify(f"actions are not available yet: {why}", severity="warning", timeout=5)
            return None
        if need_view and app.view is None:
            app.notify("no data yet: wait for the first snapshot", severity="warning", timeout=4)
            return None
        return app.executor

    def act(self, action_id: str) -> None:
        """The key of an action: its verdict's failing checks if it cannot run now, else its
        plan in the confirm modal (built in a worker: it may read the cluster)."""
        from ivytui.tui.screens.confirm import ReasonsScreen

        app = self.app
        if self._executor_now() is None or app.view is None:
            return
        verdict = check(action_id, app.view.snapshot, app.view.steps)
        if not verdict.ok and not verdict.override:
            app.push_screen(ReasonsScreen(verdict.title, verdict.summary, verdict.failing))
            return
        app.run_worker(
            self._open_plan(action_id, verdict),
            name=f"plan {action_id}",
            group="plan",
            exclusive=True,
        )

    def act_on_step(self) -> None:
        """``enter`` in the runbook: the action of the selected step."""
        app = self.app
        step = app.main.runbook.selected_step
        if step is None:
            app.notify("no step is selected", severity="warning", timeout=3)
            return
        action_id = ACTION_OF_STEP.get(step.number)
        if action_id is None:
            app.notify(NO_ACTION.get(step.number, "this step has no action"), timeout=6)
            return
        self.act(action_id)

    async def _open_plan(self, action_id: str, verdict: Verdict) -> None:
        from ivytui.tui.screens.confirm import ConfirmScreen

        app = self.app
        executor = app.executor
        if executor is None:
            return
        spec = BY_ID[action_id]
        try:
            plan = await executor.plan(action_id)
        except IvyError as exc:
            app.post_message(ActionError(spec.title, exc.title, exc.message, reasons_of(exc)))
            return
        except Exception as exc:
            app.log.error("the plan could not be built", exc)
            app.post_message(
                ActionError(spec.title, "unexpected error", f"{type(exc).__name__}: {exc}")
            )
            return

        async def replan(terminate: bool) -> PlanLike:
            return await executor.plan(action_id, terminate_sessions=terminate)

        screen = ConfirmScreen(
            plan,
            cluster=app.config.cluster,
            verdict=verdict,
            replan=replan if action_id == "freeze" else None,
            edit=executor.with_edited if spec.preview == "manifest" and plan.yaml else None,
        )

        def answered(yes: bool | None) -> None:
            if yes:
                self.start(screen.plan, typed=screen.typed, override=screen.override, shown=verdict)

        app.push_screen(screen, answered)

    def start(
        self,
        plan: PlanLike,
        *,
        typed: str = "",
        override: str = "",
        shown: Verdict | None = None,
    ) -> None:
        """Run a confirmed plan in a worker; the screen stays live and shows its progress."""
        app = self.app
        executor = app.executor
        if self.running is not None or executor is None:
            return
        self._begin(plan.key, plan.title, f"{plan.title}: confirmed")
        app.run_worker(
            self._execute(executor, plan, typed=typed, override=override, shown=shown),
            name=f"action {plan.key}",
            group="action",
            exit_on_error=False,
        )

    def _begin(self, key: str, title: str, said: str, stage: str | None = None) -> None:
        app = self.app
        self.running = Running(key, title, app.clock())
        if stage is not None:
            self.running.stage = stage
        app.main.show_progress(running_markup(self.running, app.clock()))
        app.say("info", said)

    async def _execute(
        self,
        executor: ExecutorLike,
        plan: PlanLike,
        *,
        typed: str,
        override: str,
        shown: Verdict | None,
    ) -> None:
        app = self.app
        try:
            outcome = await executor.execute(
                plan, override=override, typed=typed, progress=self._progress, shown=shown
            )
        except IvyError as exc:
            app.post_message(ActionError(plan.title, exc.title, exc.message, reasons_of(exc)))
        except Exception as exc:
            app.log.error("the action failed unexpectedly", exc)
            app.post_message(
                ActionError(plan.title, "unexpected error", f"{type(exc).__name__}: {exc}")
            )
        else:
            app.post_message(ActionDone(plan.title, outcome.text))

    def _progress(self, text: str) -> None:
        self.app.post_message(ActionProgress(text))

    # -- the takeover ------------------------------------------------------------------------

    def take_over(self) -> None:
        """``T``: the typed-name question, then the executor takes the driver Lease."""
        from ivytui.tui.screens.confirm import ConfirmScreen

        app = self.app
        executor = self._executor_now(need_view=False)
        if executor is None:
            return
        driver = str(getattr(app.view, "driver", "") or "")
        question = take_over_question(app.config.cluster, executor.holder, driver)
        screen = ConfirmScreen(question, cluster=app.config.cluster, yes_label="Yes, take over")

        def answered(yes: bool | None) -> None:
            if yes and self.running is None and app.executor is not None:
                self._begin(
                    TAKE_OVER,
                    TAKE_OVER_TITLE,
                    f"{TAKE_OVER_TITLE}: confirmed",
                    stage="taking the driver Lease",
                )
                app.run_worker(
                    self._take_over(app.executor, screen.typed),
                    name="take over",
                    group="action",
                    exit_on_error=False,
                )

        app.push_screen(screen, answered)

    async def _take_over(self, executor: ExecutorLike, typed: str) -> None:
        app = self.app
        try:
            text = await executor.take_over(typed)
        except IvyError as exc:
            app.post_message(ActionError(TAKE_OVER_TITLE, exc.title, exc.message, reasons_of(exc)))
        except Exception as exc:
            app.log.error("the takeover failed unexpectedly", exc)
            app.post_message(
                ActionError(TAKE_OVER_TITLE, "unexpected error", f"{type(exc).__name__}: {exc}")
            )
        else:
            app.post_message(ActionDone(TAKE_OVER_TITLE, text))

    # -- what the executor reports -----------------------------------------------------------

    def progress_arrived(self, message: ActionProgress) -> None:
        app = self.app
        if self.running is None:
            return
        self.running.stage = message.text
        app.main.show_progress(running_markup(self.running, app.clock()))
        app.say("info", f"{self.running.title}: {message.text}")

    def done(self, message: ActionDone) -> None:
        app = self.app
        self.running = None
        self.last_ended = Ended(message.title, True, message.text, app.clock())
        app.main.show_progress(done_markup(message.title, message.text))
        app.say("info", f"{message.title}: {message.text}")
        app.notify(message.text, title=f"done: {message.title}", timeout=6)
        self._refresh_after()

    def failed(self, message: ActionError) -> None:
        from ivytui.tui.screens.confirm import ReasonsScreen

        app = self.app
        self.running = None
        self.last_ended = Ended(
            message.action, False, f"{message.title}: {message.message}", app.clock()
        )
        app.main.show_progress(failed_markup(message.action, message.title, message.message))
        app.say("error", f"{message.action}: {message.title}: {message.message}")
        app.push_screen(
            ReasonsScreen(
                f"{message.action}: {message.title}",
                message.message,
                message.checks,
                hint=conflict_hint() if message.title == "conflict" else "",
                error=True,
            )
        )
        self._refresh_after()

    def _refresh_after(self) -> None:
        app = self.app
        if app.hub is not None and app.hub_started:
            app.run_worker(app.hub.refresh(), name="refresh", group="refresh", exclusive=True)

    def tick(self) -> None:
        """Every few seconds: the running action's age on the progress line."""
        if self.running is not None:
            self.app.main.show_progress(running_markup(self.running, self.app.clock()))

    # -- actions left without an outcome -----------------------------------------------------

    def read_interrupted(self, executor: ExecutorLike) -> None:
        """Once, when the executor has started: the actions an earlier console left without an
        outcome (read in a worker: the journal file and the cluster)."""
        self.app.run_worker(
            self._read_interrupted(executor),
            name="interrupted",
            group="interrupted",
            exit_on_error=False,
        )

    async def _read_interrupted(self, executor: ExecutorLike) -> None:
        app = self.app
        try:
            found = tuple(await executor.interrupted())
        except IvyError as exc:
            app.say("error", f"unfinished actions could not be read: {exc.title}: {exc.message}")
            return
        except Exception as exc:
            app.log.error("reading the interrupted actions failed", exc)
            app.say("error", f"unfinished actions could not be read: {type(exc).__name__}: {exc}")
            return
        if found:
            app.post_message(ActionsInterrupted(found))

    def interrupted_arrived(self, message: ActionsInterrupted) -> None:
        self.interrupted = message.sentences
        for sentence in message.sentences:
            self.app.say("error", f"interrupted: {sentence}")
        self.show_notice()

    def show_notice(self) -> None:
        """The interrupted action on the progress line, with its step as the cluster shows it
        now, until this console runs an action of its own."""
        if not self.interrupted or self.running is not None or self.last_ended is not None:
            return
        view = self.app.view
        self.app.main.show_progress(
            interrupted_markup(self.interrupted, view.steps if view is not None else ())
        )

    # -- quitting ----------------------------------------------------------------------------

    async def quit(self) -> None:
        """Quit; while an action runs, ask first (a second ctrl+c quits at once)."""
        from ivytui.tui.screens.confirm import ConfirmScreen

        app = self.app
        if self.running is not None and self._asking_quit is None:
            question = ConfirmScreen(
                quit_question(self.running, app.clock()), yes_label="Quit anyway"
            )
            self._asking_quit = question

            async def answered(yes: bool | None) -> None:
                self._asking_quit = None
                if yes:
                    await app.quit_now()

            app.push_screen(question, answered)
            return
        await app.quit_now()
