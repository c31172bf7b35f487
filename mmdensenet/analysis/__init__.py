"""Measuring: FLOPs and parameter counts, speed and memory against torchvision, training curves.

Import the submodules (``complexity``, ``benchmark``, ``benchmark_report``, ``curves``); each pulls in
only what it needs.
"""
