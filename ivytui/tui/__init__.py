"""The Textual console, the only package that imports textual.

``ivytui.tui.app``: ``make_app`` (the factory) and ``run_app`` (for the CLI);
``ivytui.tui.demo``: ``run_demo`` (a sandbox world that is still starting).
"""
