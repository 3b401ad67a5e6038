"""Caffe's net state and the ``include``/``exclude`` rules that filter a net's layers by it.

A net is built for a state (phase TRAIN or TEST, a level, stages); each layer's ``NetStateRule``
messages decide whether it is part of that net (``Net::FilterNet``, ``Net::StateMeetsRule``).
The fake ``caffe.Net`` and ``caffe-layers-preview`` both decide here.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence, Tuple

from caffe_layers.testing import prototxt

PHASES = {"TRAIN": 0, "TEST": 1}


@dataclasses.dataclass(frozen=True)
class NetState:
    """The state a net is built for: ``phase`` (0 TRAIN, 1 TEST), ``level`` and ``stages``."""

    phase: int
    level: int = 0
    stages: Tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Rule:
    """One ``NetStateRule`` of a layer's ``include`` or ``exclude``; None means not given."""

    phase: int | None = None
    min_level: int | None = None
    max_level: int | None = None
    stages: Tuple[str, ...] = ()
    not_stages: Tuple[str, ...] = ()

    @classmethod
    def from_message(cls, rule: prototxt.Message) -> Rule:
        """The rule written in a prototxt (values checked by the ``prototxt.as_*`` readers)."""
        def number(name: str) -> int | None:
            return prototxt.as_int(rule.get(name)) if name in rule else None

        phase = prototxt.as_enum(rule.get("phase"), PHASES, "phase") if "phase" in rule else None
        return cls(phase, number("min_level"), number("max_level"),
                   tuple(rule.getall("stage")), tuple(rule.getall("not_stage")))

    def met_by(self, state: NetState) -> bool:
        """``Net::StateMeetsRule``: every condition the rule gives holds in ``state``."""
        if self.phase is not None and self.phase != state.phase:
            return False
        if self.min_level is not None and state.level < self.min_level:
            return False
        if self.max_level is not None and state.level > self.max_level:
            return False
        if any(stage not in state.stages for stage in self.stages):
            return False
        return not any(stage in state.stages for stage in self.not_stages)


def included(state: NetState, include: Sequence[Rule], exclude: Sequence[Rule]) -> bool:
    """``Net::FilterNet`` for one layer: in the net unless an exclude rule is met, or, with
    include rules, only when one of them is met (Caffe refuses a layer that has both)."""
    kept = not include
    if any(rule.met_by(state) for rule in exclude):
        kept = False
    if any(rule.met_by(state) for rule in include):
        kept = True
    return kept
