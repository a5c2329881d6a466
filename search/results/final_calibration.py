"""The calibration step of ``medtune final``: each two-class member's scores, calibrated on its held-out scores.

Decisions are taken on calibrated probabilities (``medtune.trainables.calibration`` says why
Platt scaling): each member's map is fitted on the scores that also choose the threshold (the
out-of-fold predictions after a cross-validated sweep, else the held-out half of val), and applied
to that member's held-out and test scores. The uncalibrated scores are kept beside them (the
report's "before", ``test_predictions.csv``'s raw columns), and so is the map, which travels with
the logged model. An ensemble then averages its members' calibrated probabilities
(``final_reports``). With more than two classes nothing is calibrated here: the members come back
as they are.
"""

from __future__ import annotations

import dataclasses
import logging

from medtune.search.results.final_members import FinalMember, FinalTraining

log = logging.getLogger(__name__)


def calibrate_member(member: FinalMember) -> FinalMember:
    """``member`` with calibrated scores, its raw ones and the map; a member already calibrated
    (or of a multi-class task) comes back unchanged."""
    from medtune.trainables.calibration import fit_platt

    if member.calibration is not None or member.test_scores.ndim == 2:
        return member
    calibration = fit_platt(member.val_scores, member.val_labels)
    if calibration.is_identity:
        log.warning("scores left uncalibrated: %s", calibration.reason)
    return dataclasses.replace(member, val_scores=calibration.apply(member.val_scores),
                               test_scores=calibration.apply(member.test_scores), raw_val_scores=member.val_scores,
                               raw_test_scores=member.test_scores, calibration=calibration)


def calibrate_members(members: list[FinalMember]) -> list[FinalMember]:
    return [calibrate_member(m) for m in members]


def calibrated_training(trained: FinalTraining) -> FinalTraining:
    """``trained`` with every member calibrated (see ``calibrate_member``)."""
    return dataclasses.replace(trained, members=calibrate_members(trained.members))
