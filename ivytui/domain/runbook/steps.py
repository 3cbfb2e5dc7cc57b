"""The steps 0–7, each from the facts below it: ``done``, ``ready``, ``running`` or
``blocked``, with the checks that make it so."""

from __future__ import annotations

from functools import cached_property

from ivytui.domain.flavor import V4_STATE_SHUTDOWN
from ivytui.domain.runbook.checks import Check, StepStatus
from ivytui.domain.runbook.gate import GateFacts


class Evaluation(GateFacts):
    """Every fact of one snapshot, and the steps built from them."""

    @cached_property
    def promotion_requested(self) -> bool:
        return self.s.available("v5") and self.s.v5.exists and self.s.v5.standby_enabled is False

    @cached_property
    def step0(self) -> StepStatus:
        v4 = self.s.v4
        if self.v4_finished is not None:
            note = Check(
                True,
                f"{self.v4_finished.text}; the preflight applied before that",
                self.v4_finished.sources,
            )
            return self.step(0, [note], "done")
        if self.s.available("v4") and v4.exists and (v4.shutdown or v4.state == V4_STATE_SHUTDOWN):
            note = Check(
                True,
                f"{self.v4_label} is being shut down; the preflight applied before that",
                ("v4",),
            )
            return self.step(0, [note], "done")
        sysid, version = self.repo_identity_matches_v4
        checks = [
            self.v4_initialized,
            self.v4_object_storage,
            self.v5_crd,
            self.repo_reachable,
            self.repo_matches_v4,
            self.archive_info_present,
            sysid,
            version,
            self.archiver_failures,
            self.archiver_backlog,
        ]
        return self.step(0, checks, "done")

    @cached_property
    def step1(self) -> StepStatus:
        if self.s.available("v5") and self.s.v5.exists:
            checks = [self.v5_exists, self.v5_points_at_repo, self.v5_standby_role]
            return self.step(1, checks, "done")
        absent = self.unknown("v5") or Check(
            True,
            f"no {self.v5_label} in namespace {self.s.v5.namespace} yet",
            ("v5",),
        )
        checks = [self.after(self.step0), self.v5_crd, absent]
        return self.step(1, checks, "ready")

    @cached_property
    def step2(self) -> StepStatus:
        if self.step5_post_ok or self.promotion_requested:
            return self.step(2, [self.v5_standby_role], "done")
        after = self.after(self.step1)
        checks = [
            after,
            self.v5_pods_ready,
            self.v5_in_recovery,
            self.replay_advancing,
            self.lag_small,
        ]
        if not after.ok:
            return self.step(2, checks, "blocked")
        if all(check.ok for check in checks):
            return self.step(2, checks, "done")
        return self.step(2, checks, "running")

    @cached_property
    def step3(self) -> StepStatus:
        if self.v4_finished is not None:
            recorded, in_repo = self.target
            if recorded.ok:
                return self.step(3, [recorded, in_repo, self.v4_finished], "done")
            if self.unknown("marks") is not None:
                return self.step(3, [recorded], "blocked")
            skipped = Check(
                False,
                "v4 went down without a recorded final WAL switch: the promotion gate decides "
                "what reached the repo",
                ("marks",),
            )
            return self.step(3, [skipped], "blocked")
        frozen = self.s.available("v4db") and self.s.v4db.reachable and self.s.v4db.read_only
        marks_target = self.s.available("marks") and self.s.marks.target_lsn is not None
        v4db_silent = not self.s.available("v4db")
        if frozen or (marks_target and v4db_silent):
            recorded, in_repo = self.target
            checks = [self.v4_read_only]
            redo = False
            if frozen:
                # A commit after the switch, or a role let back in: the freeze and switch must
                # run again — the step is ready for its key, not waiting for the clusters.
                commit = self.commit_after_switch
                checks.append(self.freeze_holds)
                if commit is not None:
                    checks.append(commit)
                loose = not self.freeze_holds.ok and self.unknown("marks") is None
                redo = loose or (commit is not None and not commit.ok)
            checks += [recorded, in_repo, self.target_archived_by_v4, self.v5_past_target]
            if redo:
                return self.step(3, checks, "ready", redo=True)
            return self.step(3, checks, "done" if all(c.ok for c in checks) else "running")
        checks = [self.after(self.step2), self.v4_db_answers, self.v4_activity]
        if marks_target:
            checks.append(
                Check(
                    True,
                    f"a final switch at {self.s.marks.target_lsn} was recorded before; "
                    "v4 has been thawed since",
                    ("marks", "v4db"),
                )
            )
        return self.step(3, checks, "ready")

    @cached_property
    def step4(self) -> StepStatus:
        checks = list(self.v4_down)
        if self.v4_is_down:
            return self.step(4, checks, "done")
        if self.v4_finished is not None:
            return self.step(4, [self.v4_finished], "done")
        if self.s.available("v4") and self.s.v4.exists and self.s.v4.shutdown:
            return self.step(4, checks, "running")
        after = self.after(self.step3)
        pre = [after, self.v4_initialized]
        only_step3 = not after.ok and self.v4_initialized.ok and self.step1.state == "done"
        return self.step(4, pre, "ready", overridable=only_step3)

    @cached_property
    def step5(self) -> StepStatus:
        post = list(self.step5_post)
        if self.step5_post_ok:
            return self.step(5, post, "done")
        if self.promotion_requested:
            return self.step(5, post, "running")
        return self.step(5, self.gate, "ready")

    @cached_property
    def step6(self) -> StepStatus:
        if self.grants.ok:
            return self.step(6, [self.grants], "done")
        grants = self.grants
        if self.unknown("v5db") is None and self.s.v5db.reachable:
            grants = Check(True, f"to do: {grants.text}", grants.sources)
        checks = [self.after(self.step5), self.superuser, grants]
        return self.step(6, checks, "ready")

    @cached_property
    def step7(self) -> StepStatus:
        v4_known = self.s.available("v4")
        if v4_known and not self.s.v4.exists and self.step5.state == "done":
            gone = Check(True, f"v4 object {self.s.v4.name} is gone", ("v4",))
            return self.step(7, [gone, self.after(self.step5)], "done")
        checks = [
            self.after(self.step5),
            self.v5_out_of_recovery,
            self.v5_pods_ready,
            self.after(self.step6),
            self.no_v4_schedules,
        ]
        if v4_known and self.s.v4.exists and self.s.v4.deleting:
            deleting = Check(False, f"v4 object {self.s.v4.name} is being deleted", ("v4",))
            return self.step(7, [*checks, deleting], "running")
        if v4_known and not self.s.v4.exists:
            checks.append(Check(False, f"v4 object {self.s.v4.name} is already gone", ("v4",)))
        else:
            checks.append(
                self.unknown("v4") or Check(True, f"{self.v4_label} is there to delete", ("v4",))
            )
        return self.step(7, checks, "ready")

    def all_steps(self) -> tuple[StepStatus, ...]:
        return (
            self.step0,
            self.step1,
            self.step2,
            self.step3,
            self.step4,
            self.step5,
            self.step6,
            self.step7,
        )
