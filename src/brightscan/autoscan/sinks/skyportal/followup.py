"""What a follow-up request says, whether the facility's form accepts it, and which existing
requests make it a duplicate.

The request body follows SkyPortal's ``FollowupRequestPost`` (``obj_id``, ``allocation_id``,
``payload``, ``target_group_ids``, ``source_group_ids`` and the trigger constraints). Like the
production bot (Kowalski), the payload's ``start_date`` is now and ``end_date`` now plus a
validity window (7 days by default). The payload is checked here against the facility's form
before anything is sent; SEDM's form is written out (required mode, priority 1-5, start and end
dates, the Mix 'n Match choices and the advanced limits).

Duplicates follow Kowalski's rule: an existing request of the same allocation whose target
groups overlap ours (or both have none) is the same request. Unlike SkyPortal's own
``not_if_duplicates`` (which counts only submitted or completed requests), every status except
failed and deleted counts, so a request still "pending submission" is never doubled.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from brightscan.autoscan.sinks.skyportal.client import FollowupRequest
from brightscan.errors import ConfigError

__all__ = ["CONSTRAINT_KEYS", "FACILITY_FORMS", "FollowupPlan", "check_form", "matching_requests",
           "request_state"]

#: Trigger constraints SkyPortal's follow-up API accepts besides ``source_group_ids``.
CONSTRAINT_KEYS = ("not_if_duplicates", "not_if_classified", "not_if_spectra_exist",
                   "not_if_tns_classified", "not_if_tns_reported", "not_if_assignment_exists",
                   "ignore_source_group_ids", "ignore_allocation_ids", "radius")
DEFAULT_CONSTRAINTS = {"not_if_duplicates": True, "not_if_classified": True, "not_if_spectra_exist": True}
#: Date format of ``start_date``/``end_date`` (what Kowalski sends; SEDM reads the date part).
DATE_FORMAT = "%Y-%m-%dT%H:%M:%S.%f"


@dataclass(frozen=True)
class FollowupPlan:
    """How autoscan asks for follow-up (built from ``[sink.skyportal.followup]``).

    The plan is checked when it is made: its constraints, its validity window, and the request
    payload it would send against the facility's form (:func:`check_form`), so a payload the
    facility would refuse is a configuration error when the service starts, not a failed action.
    """

    allocation_id: int  # SkyPortal allocation
    target_group_ids: tuple[int, ...]  # groups that get the data
    source_group_ids: tuple[int, ...] = ()  # the object must be saved to these (a constraint)
    priority: float | None = None  # payload priority (SEDM: 1-5)
    observation_type: str | None = None  # payload mode (SEDM: "IFU", "3-shot (gri)", ...)
    validity_days: float = 7.0  # end_date = start_date + this
    constraints: Mapping[str, Any] = field(default_factory=lambda: dict(DEFAULT_CONSTRAINTS))
    payload: Mapping[str, Any] = field(default_factory=dict)  # other instrument keys
    facility: str | None = None  # form to check against (a key of FACILITY_FORMS)

    def __post_init__(self) -> None:
        unknown = set(self.constraints) - set(CONSTRAINT_KEYS)
        if unknown:
            raise ConfigError(f"unknown follow-up constraint(s) {sorted(unknown)}; "
                              f"SkyPortal accepts {list(CONSTRAINT_KEYS)} and source_group_ids")
        if self.validity_days <= 0:
            raise ConfigError(f"validity_days must be positive, got {self.validity_days}")
        if self.facility is not None and self.facility not in FACILITY_FORMS:
            raise ConfigError(f"no form known for facility {self.facility!r}; "
                              f"known: {sorted(FACILITY_FORMS)} (or leave it unset)")
        problems = self.form_problems(dt.datetime.now(dt.timezone.utc).replace(tzinfo=None))
        if problems:
            raise ConfigError(f"follow-up payload does not fit the {self.facility or 'request'} form: "
                              + "; ".join(problems))

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], *, group_ids: Iterable[int]) -> FollowupPlan:
        """The plan a ``[sink.skyportal.followup]`` table describes; target and source groups
        default to the sink's ``group_ids``."""
        known = {f.name for f in fields(cls)}
        unknown = set(settings) - known
        if unknown:
            raise ConfigError(f"[sink.skyportal.followup]: unknown key(s) {sorted(unknown)}")
        if "allocation_id" not in settings:
            raise ConfigError("[sink.skyportal.followup] needs allocation_id")
        values = dict(settings)
        for key in ("target_group_ids", "source_group_ids"):
            values[key] = tuple(values[key] if values.get(key) is not None else group_ids)
        for key in ("constraints", "payload"):
            if values.get(key) is None:
                values.pop(key, None)  # the field's own default
        try:
            return cls(**values)
        except TypeError as exc:
            raise ConfigError(f"[sink.skyportal.followup]: {exc}") from None

    def form_problems(self, now: dt.datetime) -> list[str]:
        """What the facility's form would object to in a request made at ``now`` (UTC)."""
        return check_form(self.facility, self.request_payload(now))

    def request_payload(self, now: dt.datetime) -> dict[str, Any]:
        """The instrument payload for a request made at ``now`` (UTC)."""
        payload = dict(self.payload)
        if self.priority is not None:
            payload["priority"] = self.priority
        if self.observation_type is not None:
            payload["observation_type"] = self.observation_type
        payload["start_date"] = now.strftime(DATE_FORMAT)
        payload["end_date"] = (now + dt.timedelta(days=self.validity_days)).strftime(DATE_FORMAT)
        return payload

    def request_body(self, obj_id: str, now: dt.datetime) -> dict[str, Any]:
        """The ``POST /api/followup_request`` body; ``not_if_duplicates`` is always on."""
        body: dict[str, Any] = {"obj_id": obj_id, "allocation_id": self.allocation_id,
                                "payload": self.request_payload(now),
                                "target_group_ids": list(self.target_group_ids)}
        if self.source_group_ids:
            body["source_group_ids"] = list(self.source_group_ids)
        body.update(self.constraints)
        body["not_if_duplicates"] = True
        return body


def check_form(facility: str | None, payload: Mapping[str, Any]) -> list[str]:
    """Problems of ``payload`` against the facility's form (empty when it would be accepted)."""
    problems = _check_dates(payload)
    if facility is not None:
        problems += FACILITY_FORMS[facility](payload)
    return problems


def _check_dates(payload: Mapping[str, Any]) -> list[str]:
    try:
        start = dt.datetime.fromisoformat(str(payload["start_date"]))
        end = dt.datetime.fromisoformat(str(payload["end_date"]))
    except KeyError as exc:
        return [f"{exc.args[0]} is required"]
    except ValueError as exc:
        return [f"start_date/end_date: {exc}"]
    return [] if end > start else ["end_date must be after start_date"]


_SEDM_MODES = ("3-shot (gri)", "4-shot (ugri)", "IFU", "4-shot+IFU", "3-shot+IFU", "Mix 'n Match")
_SEDM_CHOICES = ("u", "g", "r", "i", "IFU")
_SEDM_ADVANCED = {"exposure_time": (-1, 3600), "maximum_airmass": (1, 3), "maximum_fwhm": (1, 10)}


def _number_in(payload: Mapping[str, Any], key: str, low: float, high: float) -> list[str]:
    value = payload.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return [f"{key} must be a number, got {value!r}"]
    return [] if low <= value <= high else [f"{key} must be within [{low}, {high}], got {value}"]


def _check_sedm(payload: Mapping[str, Any]) -> list[str]:
    """SEDM's form (skyportal ``facility_apis/sedm.py``), rule by rule."""
    problems = [f"{key} is required" for key in ("observation_type", "priority") if key not in payload]
    mode = payload.get("observation_type")
    if "observation_type" in payload and mode not in _SEDM_MODES:
        problems.append(f"observation_type must be one of {list(_SEDM_MODES)}, got {mode!r}")
    if "priority" in payload:
        problems += _number_in(payload, "priority", 1, 5)
    if mode == "Mix 'n Match":
        choices = payload.get("observation_choices")
        if (not isinstance(choices, list) or not choices or len(set(choices)) != len(choices)
                or not set(choices) <= set(_SEDM_CHOICES)):
            problems.append(f"Mix 'n Match needs observation_choices: distinct items of {list(_SEDM_CHOICES)}")
    if payload.get("advanced") is True:
        for key, (low, high) in _SEDM_ADVANCED.items():
            problems += _number_in(payload, key, low, high)
    return problems


#: Facility name -> form check (returns the problems).
FACILITY_FORMS: dict[str, Callable[[Mapping[str, Any]], list[str]]] = {"SEDM": _check_sedm}


def request_state(status: str) -> str:
    """``gone`` (failed, deleted: not counted), ``pending`` (facility call under way),
    ``refused`` (the facility rejected it) or ``active`` (submitted, running, completed...)."""
    status = status.lower()
    if "failed" in status or "deleted" in status:
        return "gone"
    if "rejected" in status:
        return "refused"
    if "pending" in status:
        return "pending"
    return "active"


def matching_requests(requests: Iterable[FollowupRequest], plan: FollowupPlan) -> list[FollowupRequest]:
    """Kowalski's duplicate rule: same allocation, overlapping target groups (or both none)."""
    mine = set(plan.target_group_ids)
    return [r for r in requests if r.allocation_id == plan.allocation_id
            and (mine & r.target_group_ids or (not mine and not r.target_group_ids))]
