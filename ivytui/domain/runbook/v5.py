"""Facts read from v5: its cluster object and pods, and its database — before and after the
promotion."""

from __future__ import annotations

from functools import cached_property

from ivytui.domain.flavor import GRANTED_FUNCTIONS
from ivytui.domain.lag import v4_timeline
from ivytui.domain.model import SourceName
from ivytui.domain.runbook.checks import Check, because, union
from ivytui.domain.runbook.repo import RepoFacts


class V5Facts(RepoFacts):
    """What v5's object, pods and database show; and whether v4 can write no more."""

    @cached_property
    def v5_label(self) -> str:
        v5 = self.s.v5
        return f"{v5.kind or self.s.flavor.v5.kind} {v5.name or '(unnamed)'}"

    @cached_property
    def v5_crd(self) -> Check:
        if (c := self.unknown("v5")) is not None:
            return c
        crd = self.s.flavor.v5.crd_name
        if self.s.v5.crd_installed is True:
            return Check(True, f"the v5 CRD {crd} is installed", ("v5",))
        if self.s.v5.crd_installed is False:
            return Check(False, f"the v5 CRD {crd} is not installed", ("v5",))
        return Check(False, f"whether the v5 CRD {crd} is installed is not known yet", ("v5",))

    @cached_property
    def v5_exists(self) -> Check:
        if (c := self.unknown("v5")) is not None:
            return c
        v5 = self.s.v5
        if v5.exists:
            return Check(True, f"{self.v5_label} exists in namespace {v5.namespace}", ("v5",))
        return Check(False, f"{self.v5_label} does not exist in namespace {v5.namespace}", ("v5",))

    @cached_property
    def v5_points_at_repo(self) -> Check:
        """v5's standby repo is v4's (or, once v4 is gone, the repo being watched)."""
        v4_known = self.s.available("v4") and self.s.v4.exists
        other: SourceName = "v4" if v4_known else "repo"
        if (c := self.unknown("v5", other)) is not None:
            return c
        src: tuple[SourceName, ...] = ("v5", other)
        expected = self.s.v4.repo_url if v4_known else self.s.repo.url.rstrip("/")
        actual = self.s.v5.repo_url
        repo_name = self.s.v5.standby_repo_name or "repo1"
        if expected is None:
            return Check(False, f"{self.v4_label} names no object-storage repo", src)
        if actual is None:
            return Check(
                False,
                f"{self.v5_label} has no object-storage {repo_name} with a "
                f"{repo_name}-path to read from",
                src,
            )
        if actual != expected:
            whose = "v4 archives to" if v4_known else "the repo watched is"
            return Check(
                False, f"{self.v5_label} {repo_name} reads {actual}, but {whose} {expected}", src
            )
        return Check(True, f"{self.v5_label} {repo_name} reads {actual}, v4's repo", src)

    @cached_property
    def v5_standby_role(self) -> Check:
        """v5 is a standby — or no longer one because v4 is down (the promotion)."""
        if (c := self.unknown("v5")) is not None:
            return c
        v5 = self.s.v5
        if v5.standby_enabled:
            return Check(True, f"{self.v5_label} is a standby (spec.standby.enabled)", ("v5",))
        if self.v4_finished is not None:
            return Check(
                True,
                f"{self.v5_label} is no longer a standby: promoted after v4 went down",
                union([("v5",), self.v4_finished.sources]),
            )
        return Check(
            False,
            f"{self.v5_label} is not a standby (spec.standby.enabled is false) "
            "while v4 is not proven down",
            ("v5",),
        )

    @cached_property
    def v5_pods_ready(self) -> Check:
        if (c := self.unknown("v5")) is not None:
            return c
        pods = self.s.v5.database_pods
        if not pods:
            return Check(False, f"{self.v5_label} has no PostgreSQL pod yet", ("v5",))
        waiting = [pod for pod in pods if not pod.ready or pod.phase != "Running"]
        if waiting:
            pod = waiting[0]
            state = pod.phase if pod.phase != "Running" else "Running, not ready"
            more = f" (and {len(waiting) - 1} more)" if len(waiting) > 1 else ""
            return Check(False, f"v5 pod {pod.name} is {state}{more}", ("v5",))
        names = ", ".join(pod.name for pod in pods)
        return Check(True, f"v5 PostgreSQL pods ready: {names}", ("v5",))

    @cached_property
    def v5_in_recovery(self) -> Check:
        if (c := self.unknown("v5db")) is not None:
            return c
        v5db = self.s.v5db
        if not v5db.reachable:
            return Check(
                False,
                f"v5's database does not answer{because(v5db.unreachable_reason)}",
                ("v5db",),
            )
        if v5db.in_recovery:
            return Check(True, f"v5 is in recovery, replayed to {v5db.replay_lsn}", ("v5db",))
        return Check(False, "v5 is out of recovery (no longer a standby)", ("v5db",))

    @cached_property
    def v5_out_of_recovery(self) -> Check:
        if (c := self.unknown("v5db")) is not None:
            return c
        v5db = self.s.v5db
        if not v5db.reachable:
            return Check(
                False,
                f"v5's database does not answer{because(v5db.unreachable_reason)}",
                ("v5db",),
            )
        if v5db.in_recovery is False:
            return Check(True, f"v5 is out of recovery, writing at {v5db.current_lsn}", ("v5db",))
        return Check(False, f"v5 is still in recovery at {v5db.replay_lsn}", ("v5db",))

    @cached_property
    def v4_finished(self) -> Check | None:
        """A green check when v4 can write no more: down, or deleted after v5's promotion."""
        if self.v4_is_down:
            return Check(
                True,
                "v4 is down: nothing more can be written",
                union(check.sources for check in self.v4_down),
            )
        gone = (
            self.s.available("v4")
            and not self.s.v4.exists
            and self.v4_no_db_pods.ok
            and self.v4_db_unreachable.ok
            and self.step5_post_ok
        )
        if gone:
            return Check(
                True,
                f"v4 object {self.s.v4.name} is gone and v5 is promoted",
                union([("v4", "v4db"), *(check.sources for check in self.step5_post)]),
            )
        return None

    @cached_property
    def step5_post(self) -> tuple[Check, ...]:
        return (
            self.v5_standby_disabled,
            self.v5_out_of_recovery,
            self.v5_new_timeline,
            self.history_in_repo,
        )

    @cached_property
    def step5_post_ok(self) -> bool:
        return all(check.ok for check in self.step5_post)

    @cached_property
    def v5_standby_disabled(self) -> Check:
        if (c := self.unknown("v5")) is not None:
            return c
        v5 = self.s.v5
        if not v5.exists:
            return Check(False, f"{self.v5_label} does not exist", ("v5",))
        if v5.standby_enabled is False:
            return Check(True, f"{self.v5_label} has spec.standby.enabled: false", ("v5",))
        return Check(False, f"{self.v5_label} is still a standby (spec.standby.enabled)", ("v5",))

    @cached_property
    def v5_new_timeline(self) -> Check:
        v4_tl, tl_sources = v4_timeline(self.s)
        sources = union([("v5db",), tl_sources if v4_tl is not None else ("repo",)])
        if (c := self.unknown(*sources)) is not None:
            return c
        v5db = self.s.v5db
        if not v5db.reachable or v5db.timeline is None:
            return Check(False, "v5's timeline is not known", sources)
        if v4_tl is not None:
            if v5db.timeline > v4_tl:
                return Check(
                    True, f"v5 is on timeline {v5db.timeline} (v4 was on {v4_tl})", sources
                )
            return Check(False, f"v5 is still on timeline {v5db.timeline}, v4's timeline", sources)
        if v5db.timeline in self.s.repo.history_timelines:
            return Check(
                True, f"v5 is on timeline {v5db.timeline}, created by a promotion", sources
            )
        return Check(
            False, f"v5 is on timeline {v5db.timeline}; v4's timeline is not known", sources
        )

    @cached_property
    def history_in_repo(self) -> Check:
        sources: tuple[SourceName, ...] = ("v5db", "repo")
        if (c := self.unknown(*sources)) is not None:
            return c
        timeline = self.s.v5db.timeline
        if timeline is None:
            return Check(False, "v5's timeline is not known", sources)
        name = f"{timeline:08X}.history"
        if timeline in self.s.repo.history_timelines:
            return Check(True, f"{name} is in the repo", sources)
        return Check(False, f"{name} is not in the repo yet", sources)

    @cached_property
    def v5_is_standby(self) -> Check:
        if (c := self.unknown("v5")) is not None:
            return c
        if self.s.v5.exists and self.s.v5.standby_enabled:
            return Check(True, f"{self.v5_label} is a standby, ready to promote", ("v5",))
        if not self.s.v5.exists:
            return Check(False, f"{self.v5_label} does not exist", ("v5",))
        return Check(False, f"{self.v5_label} is not a standby", ("v5",))

    @cached_property
    def superuser(self) -> Check:
        if (c := self.unknown("v5db")) is not None:
            return c
        v5db = self.s.v5db
        if not v5db.reachable:
            return Check(False, "v5's database does not answer", ("v5db",))
        if v5db.is_superuser:
            return Check(True, "the v5 connection is a superuser's", ("v5db",))
        if v5db.is_superuser is None:
            return Check(False, "whether the v5 connection is a superuser is not known", ("v5db",))
        return Check(False, "the v5 connection is not a superuser: the grants need one", ("v5db",))

    @cached_property
    def grants(self) -> Check:
        if (c := self.unknown("v5db")) is not None:
            return c
        role = self.s.flavor.replication_role
        verified = self.s.v5db.grants_verified if self.s.v5db.reachable else None
        if verified:
            return Check(True, f"role {role} exists with EXECUTE on the 4 functions", ("v5db",))
        if verified is None:
            return Check(False, f"the grants to {role} are not verified yet", ("v5db",))
        functions = ", ".join(sorted({f.split(".")[-1].split("(")[0] for f in GRANTED_FUNCTIONS}))
        return Check(False, f"role {role} is missing or lacks EXECUTE on {functions}", ("v5db",))
