"""Analysis tools: FLOPs and parameter counts, training curves and image inference.

Import the submodules (``curves``, ``complexity``, ``inference``); each pulls in only what it needs.
"""
