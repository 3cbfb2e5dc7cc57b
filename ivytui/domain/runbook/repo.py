"""Facts read from the repo in object storage (with v4's identity to compare it with)."""

from __future__ import annotations

from functools import cached_property

from ivytui.domain.human import format_duration
from ivytui.domain.lag import newest_segment_on, v4_timeline
from ivytui.domain.model import SourceName
from ivytui.domain.runbook.checks import Check, because, union
from ivytui.domain.runbook.v4 import V4Facts
from ivytui.domain.walname import WalSegment


class RepoFacts(V4Facts):
    """What the pgBackRest repo under v4's ``repo1-path`` holds."""

    @cached_property
    def repo_reachable(self) -> Check:
        if (c := self.unknown("repo")) is not None:
            return c
        repo = self.s.repo
        if not repo.reachable:
            return Check(
                False,
                f"the bucket {repo.url} is not reachable with the credentials"
                f"{because(repo.unreachable_reason)}",
                ("repo",),
            )
        return Check(True, f"the bucket {repo.url} is reachable", ("repo",))

    @cached_property
    def repo_matches_v4(self) -> Check:
        if (c := self.unknown("v4", "repo")) is not None:
            return c
        expected, actual = self.s.v4.repo_url, self.s.repo.url
        if expected is None:
            return Check(False, f"{self.v4_label} names no object-storage repo", ("v4", "repo"))
        if actual.rstrip("/") != expected:
            return Check(
                False, f"the repo read is {actual}, but v4 archives to {expected}", ("v4", "repo")
            )
        return Check(True, f"the repo read is v4's, {expected}", ("v4", "repo"))

    @cached_property
    def archive_info_present(self) -> Check:
        if (c := self.unknown("repo")) is not None:
            return c
        repo = self.s.repo
        if repo.info_error is not None:
            return Check(False, f"archive.info cannot be read: {repo.info_error}", ("repo",))
        if repo.archive_info is None:
            return Check(False, f"no archive.info for stanza db under {repo.url}", ("repo",))
        info = repo.archive_info
        return Check(
            True,
            f"archive.info for stanza db: system id {info.system_id}, PostgreSQL {info.version}",
            ("repo",),
        )

    @cached_property
    def repo_identity_matches_v4(self) -> tuple[Check, Check]:
        if (c := self.unknown("repo", "v4db")) is not None:
            return c, c
        info = self.s.repo.archive_info
        v4db = self.s.v4db
        src: tuple[SourceName, ...] = ("repo", "v4db")
        if info is None:
            missing = Check(False, "archive.info is missing: nothing to compare with v4", src)
            return missing, missing
        if not v4db.reachable or v4db.system_id is None:
            silent = Check(
                False, "v4's database does not answer: its system id and version are unknown", src
            )
            return silent, silent
        if info.system_id == v4db.system_id:
            sysid = Check(True, f"system id {info.system_id} is the same in v4 and the repo", src)
        else:
            sysid = Check(
                False,
                f"the repo's system id {info.system_id} is not v4's {v4db.system_id}: "
                "the repo belongs to another cluster",
                src,
            )
        if info.version == v4db.pg_major:
            version = Check(True, f"PostgreSQL {info.version} in v4 and in the repo", src)
        else:
            version = Check(
                False,
                f"the repo says PostgreSQL {info.version}, v4 runs {v4db.pg_major or 'unknown'}",
                src,
            )
        return sysid, version

    @cached_property
    def v4_newest(self) -> tuple[WalSegment | None, Check | None, tuple[SourceName, ...]]:
        """The repo's newest segment on v4's timeline, or the red check explaining why not."""
        timeline, tl_sources = v4_timeline(self.s)
        sources = union([("repo",), tl_sources])
        if (c := self.unknown("repo")) is not None:
            return None, c, sources
        if timeline is None:
            return (
                None,
                Check(
                    False,
                    "unknown: v4's timeline (its database does not answer and no last position "
                    "was recorded)",
                    sources,
                ),
                sources,
            )
        newest = newest_segment_on(self.s, timeline)
        if newest is None:
            return (
                None,
                Check(False, f"the repo holds no WAL segment on v4's timeline {timeline}", sources),
                sources,
            )
        return newest, None, sources

    @cached_property
    def repo_quiet(self) -> Check:
        newest, problem, sources = self.v4_newest
        if newest is None:
            assert problem is not None
            return problem
        obj = self.s.repo.newest_on(newest.timeline)
        stored = obj.last_modified if obj is not None else None
        if stored is None:
            return Check(
                False, f"the repo's newest v4 segment {newest.name} has no stored time", sources
            )
        age = self.s.now - stored
        quiet = self.s.thresholds.repo_quiet_seconds
        if age >= quiet:
            return Check(
                True,
                f"the repo stopped growing on timeline {newest.timeline}: newest segment "
                f"{newest.name} stored {format_duration(age)} ago",
                sources,
            )
        return Check(
            False,
            f"the repo is still growing on timeline {newest.timeline}: {newest.name} stored "
            f"{format_duration(max(age, 0))} ago (needs {format_duration(quiet)} of quiet)",
            sources,
        )
