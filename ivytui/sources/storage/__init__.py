"""The pgBackRest repo in object storage (S3, S3-compatible, GCS), read incrementally.

Where the repo is: the config's ``repo`` section wins field by field over the v4 ``Pgcluster``
(``backrestS3Bucket``/``Endpoint``/``Region``/``URIStyle``/``VerifyTLS``, ``backrestRepoPath``,
``backrestGCS*``); once v4 is gone, the v5 object's standby repo is used instead. Credentials
come from v4's ``<cluster>-backrest-repo-config`` Secret (``aws-s3-key``, ``aws-s3-key-secret``,
``aws-s3-ca.crt``, ``gcs-key``), else from v5's pgBackRest configuration Secrets
(``repo1-s3-key=`` lines), else from the usual AWS environment and profiles (or, for GCS,
``GOOGLE_APPLICATION_CREDENTIALS``). A GCS emulator is reached through
``STORAGE_EMULATOR_HOST`` or an endpoint with an ``http://`` scheme.

How it stays cheap — per poll, a small constant number of requests whatever the archive's size:

1. ``archive.info`` and ``backup.info`` are fetched only when they changed (S3: ``If-None-Match``
   with the last ETag, a 304 keeps the parsed value; GCS: the object's generation);
2. the archive ids (``archive/db/15-1/``…) are listed with a delimiter once, and again only when
   ``archive.info`` changes or every few minutes;
3. the first time, each archive id is listed with a delimiter (its ``TTTTTTTTLLLLLLLL/`` folders
   and ``.history`` files) and only the newest folder of each timeline is listed in full;
4. after that, one listing per timeline returns only keys after the newest one seen
   (``StartAfter``; the newest timeline's listing also catches new timelines and history files);
5. the older folders are counted in the background, at most :data:`COUNT_PAGES_PER_POLL` pages a
   poll, so ``segment_count`` becomes exact without ever making a poll long.

Every HTTP request is counted (``last_poll_requests``).

Modules: :mod:`.base` (what the repo is and what a store answers), :mod:`.s3` and :mod:`.gcs`
(the two stores), :mod:`.locate` (where the repo is, from the config, v4, v5 and Secrets) and
:mod:`.source` (the incremental reader).
"""

from __future__ import annotations

from ivytui.sources.storage.base import (
    CONNECT_TIMEOUT,
    PAGE_SIZE,
    READ_TIMEOUT,
    Locate,
    RepoTarget,
)
from ivytui.sources.storage.gcs import GCS_API_ROOT, gcs_api_root
from ivytui.sources.storage.locate import SECRET_REFRESH, repo_locator
from ivytui.sources.storage.source import ARCHIVE_IDS_REFRESH, COUNT_PAGES_PER_POLL, RepoSource

__all__ = [
    "ARCHIVE_IDS_REFRESH",
    "CONNECT_TIMEOUT",
    "COUNT_PAGES_PER_POLL",
    "GCS_API_ROOT",
    "PAGE_SIZE",
    "READ_TIMEOUT",
    "SECRET_REFRESH",
    "Locate",
    "RepoSource",
    "RepoTarget",
    "gcs_api_root",
    "repo_locator",
]
