"""The `partnerflow` command line: every admin task, tables for people, --json for scripts."""

from __future__ import annotations

from partnerflow.cli.app import create_cli, main

__all__ = ["create_cli", "main"]
