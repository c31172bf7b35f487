"""Measuring: FLOPs and parameter counts, training curves.

Import the submodules (``complexity``, ``curves``); each pulls in only what it needs.
"""
