"""Leaves need no code: inputs are argument buffers, constants are folded
into the code or placed in a constant buffer by the planner."""

from .table import LOWERINGS, Lowering, Placement

LOWERINGS["const"] = Lowering(Placement.LEAF)
LOWERINGS["input"] = Lowering(Placement.LEAF)
