"""Analysis tools: FLOPs and parameter counts, training curves, image inference and benchmarks.

Import the submodules (``curves``, ``complexity``, ``inference``, ``benchmark``, ``benchmark_report``);
each pulls in only what it needs.
"""
