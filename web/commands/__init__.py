"""Subcommands of ``homework-help``; see :mod:`web.cli`."""
