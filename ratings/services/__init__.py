"""Writes for the ratings app: studies, panelists, assignments and answers.

Everything here is what views, commands and other apps (simulate_panel) call.
"""

from .assignments import (
    assignment_change_sides,
    assignment_next,
    assignment_skip,
    assignment_submit,
    assignment_submit_sides,
)
from .errors import (
    AlreadyAnswered,
    AnswerLocked,
    InvalidScores,
    ItemExpired,
    LinkRevoked,
    NotAssigned,
    RatingRefused,
    ShareLinkFull,
    StudyNotOpen,
    StudySetupError,
    TooManyRequests,
)
from .panelists import (
    panelist_check,
    panelist_consent,
    panelist_create,
    panelist_exclude,
    panelist_from_share,
    panelist_revoke,
)
from .pool import assignments_expire, assignments_release_for_panelist
from .studies import (
    DEFAULT_CRITERIA,
    criterion_save,
    studies_items_sync_for_sweep,
    study_close,
    study_create,
    study_default_criteria_ensure,
    study_items_sync,
    study_open,
    study_share_disable,
    study_share_enable,
)

__all__ = [
    "AlreadyAnswered",
    "AnswerLocked",
    "DEFAULT_CRITERIA",
    "InvalidScores",
    "ItemExpired",
    "LinkRevoked",
    "NotAssigned",
    "RatingRefused",
    "ShareLinkFull",
    "StudyNotOpen",
    "StudySetupError",
    "TooManyRequests",
    "assignment_change_sides",
    "assignment_next",
    "assignment_skip",
    "assignment_submit",
    "assignment_submit_sides",
    "assignments_expire",
    "assignments_release_for_panelist",
    "criterion_save",
    "panelist_check",
    "panelist_consent",
    "panelist_create",
    "panelist_exclude",
    "panelist_from_share",
    "panelist_revoke",
    "study_close",
    "study_create",
    "study_default_criteria_ensure",
    "studies_items_sync_for_sweep",
    "study_items_sync",
    "study_open",
    "study_share_disable",
    "study_share_enable",
]
