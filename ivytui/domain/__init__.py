"""The pure core: snapshots, LSN arithmetic, repo parsing, lag and the runbook. No I/O here."""
