"""The domain kernel: the concepts every other layer shares, each defined once.

Dependency-free (standard library only; it imports nothing of ours), so models, frames,
metrics, aggregates, reports, the demo and the CLI can all import it:

- ``domain.window``: the time window and the as_of rule (parsed once, one rule, one error).
- ``domain.money``: the money mode of frames (``"float"`` or ``"decimal"``) and exact rounding.
- ``domain.enums``: position and order statuses, actions and types (StrEnums).

Import the modules directly (``from shivx_analytics.domain.window import ...``).
"""
