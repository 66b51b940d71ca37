"""The SkyPortal API subset autoscan uses, as SkyPortal's handlers behave (state in memory).

Each handler follows the observable behaviour of the real one in ``skyportal/skyportal``:
the same validation, the same answers (``{"status": "success", "data": ...}`` or ``{"status":
"error", "message": ...}`` with the real messages) and the same server-side semantics:

* ``POST /api/candidates`` (handlers/api/candidate/candidate.py): ``filter_ids`` and
  ``passed_at`` required; a new object needs ra/dec; one candidate per (object, filter,
  passed_at): a repeat returns the existing ids.
* ``PUT /api/photometry`` (photometry.py): flux or mag space, known filters and magnitude
  systems, known instrument and object, group ids checked; a point equal on (object,
  instrument, origin, mjd, fluxerr, flux) to a stored one is not stored again.
* ``POST /api/thumbnail`` (thumbnail.py): a PNG of 16-500 px a side; every post adds a row.
* ``GET/POST /api/sources`` (source.py): unknown object -> 404 "Source not found"; saving to a
  group the source is in re-activates it (no new row); the answer lists ``saved_to_groups``.
* ``GET/POST /api/followup_request`` (followup_request.py, facility_apis/sedm.py): pagination
  (100 a page, ``totalMatches``), ``sourceID`` matched as a substring; a request is stored as
  "pending submission" *before* the facility is called, so it is listed during the call;
  ``not_if_duplicates`` counts only submitted/completed requests; the payload is validated
  against SEDM's form; the facility's refusal is a 200 with ``request_status: "rejected: ..."``.
* annotations (annotation.py): origin unique per object across the instance, whatever the
  groups; a token lists only annotations of its groups.
"""

from __future__ import annotations

import base64
import io
import itertools
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

Answer = tuple[int, dict[str, Any]]

ALLOWED_FILTERS = {"ztfg", "ztfr", "ztfi", "sdssg", "sdssr", "sdssi", "bessellv", "2massj"}
ALLOWED_MAGSYS = {"ab", "vega", "bd17", "csp", "ab-b12"}
FOLLOWUP_POST_FIELDS = {"obj_id", "payload", "status", "allocation_id", "target_group_ids",
                        "not_if_duplicates", "source_group_ids", "not_if_classified",
                        "not_if_spectra_exist", "not_if_tns_classified", "not_if_tns_reported",
                        "not_if_assignment_exists", "ignore_source_group_ids", "radius",
                        "ignore_allocation_ids"}
SEDM_MODES = ["3-shot (gri)", "4-shot (ugri)", "IFU", "4-shot+IFU", "3-shot+IFU", "Mix 'n Match"]
# SEDM's form as the facility API declares it (a JSON schema), for the validator below
SEDM_FORM = {
    "type": "object",
    "properties": {
        "observation_type": {"type": "string", "enum": SEDM_MODES},
        "priority": {"type": "number", "minimum": 1, "maximum": 5},
        "start_date": {"type": "string"},
        "end_date": {"type": "string"},
        "exposure_time": {"type": "number", "minimum": -1, "maximum": 3600},
        "maximum_airmass": {"type": "number", "minimum": 1, "maximum": 3},
        "maximum_fwhm": {"type": "number", "minimum": 1, "maximum": 10},
        "observation_choices": {"type": "array", "minItems": 1,
                                "items": {"type": "string", "enum": ["u", "g", "r", "i", "IFU"]}},
    },
    "required": ["observation_type", "priority", "start_date", "end_date"],
    "if_mode_requires": {"Mix 'n Match": ["observation_choices"]},
}


def ok(data: Any = None) -> Answer:
    return 200, {"status": "success", "data": {} if data is None else data, "version": "fake"}


def error(message: str, status: int = 400) -> Answer:
    return status, {"status": "error", "message": message, "data": {}, "version": "fake"}


def schema_problem(schema: dict[str, Any], doc: dict[str, Any]) -> str | None:
    """First violation of ``doc`` against the SEDM-style schema, worded like jsonschema."""
    for key in schema["required"]:
        if key not in doc:
            return f"'{key}' is a required property"
    for key, rule in schema["properties"].items():
        if key not in doc:
            continue
        value = doc[key]
        kind = {"string": str, "number": (int, float), "array": list}[rule["type"]]
        if not isinstance(value, kind) or isinstance(value, bool):
            return f"{value!r} is not of type '{rule['type']}'"
        if "enum" in rule and value not in rule["enum"]:
            return f"{value!r} is not one of {rule['enum']}"
        if "minimum" in rule and value < rule["minimum"]:
            return f"{value!r} is less than the minimum of {rule['minimum']}"
        if "maximum" in rule and value > rule["maximum"]:
            return f"{value!r} is greater than the maximum of {rule['maximum']}"
        if rule["type"] == "array" and (len(value) < rule["minItems"]
                                        or any(v not in rule["items"]["enum"] for v in value)):
            return f"{value!r} is not valid under any of the given schemas"
    for mode, needed in schema["if_mode_requires"].items():
        if doc.get("observation_type") == mode and any(k not in doc for k in needed):
            return f"{doc!r} is not valid under any of the given schemas"
    return None


@dataclass
class Token:
    """Who a token belongs to: its user's groups and permissions (ACLs)."""

    user_id: int
    group_ids: set[int]
    acls: set[str] = field(default_factory=lambda: {"Upload data", "Annotate"})


@dataclass
class PortalState:
    """Everything the fake SkyPortal stores."""

    tokens: dict[str, Token] = field(default_factory=dict)
    groups: dict[int, str] = field(default_factory=dict)
    filters: dict[int, int] = field(default_factory=dict)  # filter id -> group id
    instruments: dict[int, str] = field(default_factory=lambda: {1: "ZTF"})
    allocations: dict[int, dict[str, Any]] = field(default_factory=dict)  # id -> group_id, facility
    objs: dict[str, dict[str, Any]] = field(default_factory=dict)
    classified: set[str] = field(default_factory=set)  # objects with a human classification
    candidates: list[dict[str, Any]] = field(default_factory=list)
    sources: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    photometry: list[dict[str, Any]] = field(default_factory=list)
    thumbnails: list[dict[str, Any]] = field(default_factory=list)
    followups: list[dict[str, Any]] = field(default_factory=list)
    annotations: list[dict[str, Any]] = field(default_factory=list)
    ids: Any = field(default_factory=lambda: itertools.count(1))

    def next_id(self) -> int:
        return next(self.ids)

    def groups_of(self, token: str) -> set[int]:
        return self.tokens[token].group_ids

    def group_dicts(self, ids: Any) -> list[dict[str, Any]]:
        return [{"id": g, "name": self.groups[g]} for g in sorted(ids)]

    def allocation_readable(self, token: str, allocation_id: int) -> bool:
        alloc = self.allocations.get(allocation_id)
        return alloc is not None and alloc["group_id"] in self.groups_of(token)


# ---- candidates, photometry, thumbnails, sources -------------------------------------------
def post_candidates(s: PortalState, token: str, body: dict[str, Any]) -> Answer:
    if body.get("id") is None:
        return error("Missing required parameter: `id`.")
    obj_id = str(body["id"])
    exists = obj_id in s.objs
    for coord in ("ra", "dec"):
        if body.get(coord) is None and not exists:
            return error(f"{coord.upper() if coord == 'ra' else 'Dec'} must not be null for a new Obj")
    if body.get("passed_at") is None:
        return error("Missing required parameter: `passed_at`.")
    if "filter_ids" not in body:
        return error("Missing required filter_ids parameter.")
    filters = [f for f in body["filter_ids"] if s.filters.get(f) in s.groups_of(token)]
    if not filters:
        return error("At least one valid filter ID must be provided.")
    if not exists:
        s.objs[obj_id] = {"ra": body["ra"], "dec": body["dec"]}
    ids = []
    for f in filters:
        same = [c for c in s.candidates if (c["obj_id"], c["filter_id"], c["passed_at"])
                == (obj_id, f, body["passed_at"])]
        if not same:
            same = [{"id": s.next_id(), "obj_id": obj_id, "filter_id": f, "passed_at": body["passed_at"],
                     "passing_alert_id": body.get("passing_alert_id")}]
            s.candidates.append(same[0])
        ids.append(same[0]["id"])
    return ok({"ids": ids})


def _columns(body: dict[str, Any]) -> list[dict[str, Any]] | str:
    """Broadcast scalars against lists, as the photometry handler does; a str is an error."""
    lengths = {len(v) for k, v in body.items() if isinstance(v, list) and k not in ("group_ids", "stream_ids")}
    if len(lengths) > 1:
        return "Unable to coerce passed JSON to a series of packets. Error was: \"All arrays must be of the same length\""
    n = lengths.pop() if lengths else 1
    rows = [{} for _ in range(n)]
    for key, value in body.items():
        if key in ("group_ids", "stream_ids"):
            continue
        for i, row in enumerate(rows):
            row[key] = value[i] if isinstance(value, list) else value
    return rows


def put_photometry(s: PortalState, token: str, body: dict[str, Any]) -> Answer:
    groups = body.get("group_ids", [])
    if not isinstance(groups, list) or any(g not in s.groups for g in groups):
        bad = set(groups) - set(s.groups) if isinstance(groups, list) else groups
        return error(f"Invalid group IDs: {bad}. Available group IDs: {set(s.groups)}")
    rows = _columns(body)
    if isinstance(rows, str):
        return error(rows)
    required = ["magsys", "mjd", "filter", "obj_id", "instrument_id", "fluxerr", "zp"]
    for row in rows:
        missing = [k for k in required if row.get(k) is None]
        if missing:
            return error(f'Error parsing packet "{row}": missing required field {missing[0]}.')
        for key in ("flux", "fluxerr"):
            if isinstance(row.get(key), float) and math.isinf(row[key]):
                return error(f'Error parsing packet "{row}": field {key} must be finite.')
    bad_filters = {r["filter"] for r in rows} - ALLOWED_FILTERS
    if bad_filters:
        return error(f"Filter(s) {bad_filters} is not allowed. Allowed filters are: {sorted(ALLOWED_FILTERS)}")
    if {r["magsys"] for r in rows} - ALLOWED_MAGSYS:
        return error(f"Error standardizing photometry data: unknown magsystem {rows[0]['magsys']!r}.")
    for row in rows:
        if row["instrument_id"] not in s.instruments:
            return error(f"Invalid instrument ID: {row['instrument_id']}")
        if str(row["obj_id"]) not in s.objs:
            return error(f"Invalid object ID: {row['obj_id']}")
    ids = []
    for row in rows:
        key = (str(row["obj_id"]), row["instrument_id"], row.get("origin") or "None", row["mjd"],
               row["fluxerr"], "__nan__" if row.get("flux") is None else row["flux"])
        match = [p for p in s.photometry if p["key"] == key]
        if not match:
            match = [{"id": s.next_id(), "key": key, "obj_id": key[0], "filter": row["filter"],
                      "groups": set(groups)}]
            s.photometry.append(match[0])
        ids.append(match[0]["id"])
    return ok({"ids": ids})


def post_thumbnail(s: PortalState, token: str, body: dict[str, Any]) -> Answer:
    from PIL import Image, UnidentifiedImageError

    extra = set(body) - {"obj_id", "data", "ttype", "survey"}
    missing = {"obj_id", "data", "ttype"} - set(body)
    if extra or missing:
        what = [f"{k}: Extra inputs are not permitted" for k in sorted(extra)]
        what += [f"{k}: Field required" for k in sorted(missing)]
        return error(f"Invalid/missing parameters: {'; '.join(what)}")
    if body["obj_id"] not in s.objs:
        return error(f"Thumbnail failed to post: Invalid obj_id: {body['obj_id']}")
    try:
        image = Image.open(io.BytesIO(base64.b64decode(body["data"])))
    except (UnidentifiedImageError, ValueError) as exc:
        return error(f"Thumbnail failed to post: Invalid file type: {exc}")
    if image.format != "PNG":
        return error("Thumbnail failed to post: Invalid thumbnail image type. Only PNG are supported.")
    if not all(16 <= x <= 500 for x in image.size):
        return error("Thumbnail failed to post: Invalid thumbnail size. Only thumbnails between "
                     "(16, 16) and (500, 500) allowed.")
    if body["ttype"] not in ("new", "ref", "sub", "sdss", "dr8", "ls", "ps1", "new_gz", "ref_gz", "sub_gz"):
        return error(f"Thumbnail failed to post: Invalid ttype: {body['ttype']}")
    row = {"id": s.next_id(), "obj_id": body["obj_id"], "type": body["ttype"],
           "survey": body.get("survey"), "created_at": time.time()}
    s.thumbnails.append(row)
    return ok({"id": row["id"]})


def get_source(s: PortalState, token: str, obj_id: str, query: dict[str, str]) -> Answer:
    if obj_id not in s.objs:
        return error("Source not found", 404)
    mine = s.groups_of(token)
    active = [g for (o, g), row in s.sources.items() if o == obj_id and row["active"] and g in mine]
    data = {"id": obj_id, **s.objs[obj_id], "groups": [
        {**g, "active": True} for g in s.group_dicts(active)]}
    if query.get("includeThumbnails", "").lower() == "true":
        latest = {}
        for t in s.thumbnails:  # the newest per (survey, type), as get_source does
            if t["obj_id"] == obj_id:
                latest[(t["survey"], t["type"])] = t
        data["thumbnails"] = list(latest.values())
    # always part of the answer, as in SkyPortal's get_source (source.py): the object's non-deleted
    # follow-up requests the token can read (no target_groups: that relationship is not loaded)
    # and its readable annotations (no groups: only the author is loaded)
    data["followup_requests"] = [{k: v for k, v in r.items() if k != "target_group_ids"}
                                 for r in s.followups if r["obj_id"] == obj_id and r["status"] != "deleted"
                                 and s.allocation_readable(token, r["allocation_id"])]
    data["annotations"] = [{k: v for k, v in a.items() if k != "group_ids"} for a in s.annotations
                           if a["obj_id"] == obj_id and _visible(s, token, a)]
    return ok(data)


def post_source(s: PortalState, token: str, body: dict[str, Any],
                race: Callable[[], bool] = lambda: False) -> Answer:
    obj_id = str(body.get("id"))
    if not obj_id.replace("_", "a").replace("-", "a").replace(".", "a").isalnum():
        return error("Failed to post source: Only letters, numbers, underscores, semicolons, colons, "
                     "+, -, and periods are allowed in source ID")
    if obj_id not in s.objs and (body.get("ra") is None or body.get("dec") is None):
        return error("Failed to post source: RA/Declination must not be null for a new Obj")
    mine = s.groups_of(token)
    group_ids = body.get("group_ids", sorted(mine))
    for g in group_ids:
        if g not in mine:
            return error(f"Failed to post source: Cannot find group_id {g}. Please remove and try again.")
    if not group_ids:
        return error("Failed to post source: Invalid group_ids field. Please specify at least one "
                     "valid group ID that you belong to.")
    new = [g for g in group_ids if not s.sources.get((obj_id, g), {}).get("active")]
    if new and race():
        # another request saved the object to one of these groups meanwhile: its row wins, this
        # transaction (all the groups) is rolled back
        s.sources[(obj_id, new[-1])] = {"active": True, "saved_by": "someone else"}
        return error(f"Failed to post source: (psycopg.errors.UniqueViolation) duplicate key value "
                     f"violates unique constraint \"sources_obj_id_group_id_key\"\nDETAIL:  Key "
                     f"(obj_id, group_id)=({obj_id}, {new[-1]}) already exists.")
    s.objs.setdefault(obj_id, {"ra": body.get("ra"), "dec": body.get("dec")})
    for g in group_ids:  # one row per (object, group): a repeat re-activates it
        s.sources.setdefault((obj_id, g), {"saved_by": token})["active"] = True
    return ok({"id": obj_id, "saved_to_groups": list(group_ids)})


# ---- follow-up requests ----------------------------------------------------------------------
def get_followups(s: PortalState, token: str, query: dict[str, str]) -> Answer:
    try:
        page = int(query.get("pageNumber", 1))
        per_page = int(query.get("numPerPage", 100))
    except ValueError:
        return error("Invalid page number value.")
    if per_page > 1000:
        return error("numPerPage must be less than 1000")
    rows = [r for r in s.followups if s.allocation_readable(token, r["allocation_id"])]
    if "allocationID" in query:
        try:
            allocation = int(query["allocationID"])
        except ValueError:
            return error("Allocation ID must be an integer.")
        if not s.allocation_readable(token, allocation):
            return error("Allocation ID does not exist or is not accessible.")
        rows = [r for r in rows if r["allocation_id"] == allocation]
    if query.get("sourceID"):
        rows = [r for r in rows if query["sourceID"].strip() in r["obj_id"]]  # Obj.id.contains
    rows.sort(key=lambda r: r["created_at"])
    chunk = rows[(page - 1) * per_page: page * per_page]
    return ok({"followup_requests": [_followup_dict(s, r) for r in chunk], "totalMatches": len(rows),
               "pageNumber": page, "numPerPage": per_page})


def _followup_dict(s: PortalState, r: dict[str, Any]) -> dict[str, Any]:
    return {**{k: v for k, v in r.items() if k != "target_group_ids"},
            "target_groups": s.group_dicts(r["target_group_ids"])}


def start_followup(s: PortalState, token: str, body: dict[str, Any]) -> Answer | dict[str, Any]:
    """Phase one of ``POST /api/followup_request``: validate, apply the constraints, store the
    request as "pending submission". Returns the stored row (the facility is called next,
    outside the lock) or the answer when it stops here."""
    unknown = set(body) - FOLLOWUP_POST_FIELDS
    missing = {"obj_id", "allocation_id"} - set(body)
    if unknown or missing:
        problems = {k: ["Unknown field."] for k in sorted(unknown)}
        problems.update({k: ["Missing data for required field."] for k in sorted(missing)})
        return error(f"Invalid / missing parameters: {problems}")
    constraint_keys = FOLLOWUP_POST_FIELDS - {"obj_id", "payload", "status", "allocation_id",
                                              "target_group_ids"}
    has_constraints = any(k in body for k in constraint_keys)
    refusal = _constraint_refusal(s, token, body)
    if refusal is not None:
        if "not submitting request" in refusal and has_constraints:
            return ok({"id": None, "ignored": True, "message": refusal})
        return error(f"Error submitting follow-up request: {refusal}")
    allocation = body["allocation_id"]
    if not s.allocation_readable(token, allocation):
        return error(f"Error submitting follow-up request: Could not find allocation with ID {allocation}.")
    payload = dict(body.get("payload") or {})
    if s.allocations[allocation]["facility"] == "SEDM":
        for key, default in (("exposure_time", -1), ("maximum_airmass", 2.8), ("maximum_fwhm", 10)):
            payload.setdefault(key, default)  # SEDM's prepare_payload
        payload.pop("advanced", None)
        problem = schema_problem(SEDM_FORM, payload)
        if problem is not None:
            return error(f"Error submitting follow-up request: {problem}\n\nFailed validating in schema")
    now = time.time()
    row = {"id": s.next_id(), "obj_id": body["obj_id"], "allocation_id": allocation,
           "payload": payload, "status": "pending submission", "requester_id": s.tokens[token].user_id,
           "target_group_ids": set(body.get("target_group_ids", [])) & s.groups_of(token),
           "created_at": now, "modified": now}
    s.followups.append(row)
    return row


def _constraint_refusal(s: PortalState, token: str, body: dict[str, Any]) -> str | None:
    obj_id = body["obj_id"]
    wanted = body.get("source_group_ids") or []
    saved = {g for (o, g), row in s.sources.items() if o == obj_id and row["active"]}
    if wanted and not set(wanted) <= saved:
        return ("There is no source for one or more of the source_group_ids specified as a "
                "constraint, not submitting request.")
    if obj_id not in s.objs:
        return f"Could not find source with ID {obj_id}."
    if body.get("not_if_duplicates"):
        allocations = {body["allocation_id"], *body.get("ignore_allocation_ids", [])}
        for r in s.followups:  # only requests that reached the facility count
            status = r["status"].lower()
            if r["obj_id"] == obj_id and r["allocation_id"] in allocations and (
                    "submitted" in status or "completed" in status):
                return ("There is already a follow-up request for this source and allocation, "
                        "not submitting request.")
    if body.get("not_if_classified") and obj_id in s.classified:
        return "Source has already been classified, not submitting request (as per constraint)."
    return None


def finish_followup(s: PortalState, row: dict[str, Any], facility_answer: str | Exception) -> Answer:
    """Phase two: the facility answered (SEDM: "accepted" -> submitted, else rejected)."""
    row["modified"] = time.time()
    if isinstance(facility_answer, Exception):
        row["status"] = f"failed to submit: {facility_answer}"
        return error(f"Error submitting follow-up request: {facility_answer}")
    row["status"] = "submitted" if "accepted" in facility_answer.lower() else f"rejected: {facility_answer}"
    return ok({"id": row["id"], "request_status": row["status"]})


# ---- annotations -----------------------------------------------------------------------------
def _visible(s: PortalState, token: str, ann: dict[str, Any]) -> bool:
    return bool(ann["group_ids"] & s.groups_of(token))


def _annotation_dict(s: PortalState, ann: dict[str, Any]) -> dict[str, Any]:
    return {**{k: v for k, v in ann.items() if k != "group_ids"}, "groups": s.group_dicts(ann["group_ids"])}


def get_annotations(s: PortalState, token: str, obj_id: str) -> Answer:
    return ok([_annotation_dict(s, a) for a in s.annotations
               if a["obj_id"] == obj_id and _visible(s, token, a)])


def post_annotation(s: PortalState, token: str, obj_id: str, body: dict[str, Any]) -> Answer:
    origin = body.get("origin")
    if not isinstance(origin, str) or not (origin[:1].isalnum() or origin[:1] == "_"):
        return error("Invalid/missing parameters: origin: String should match pattern '^\\w+'")
    if not isinstance(body.get("data"), dict):
        return error("Invalid/missing parameters: data: Field required")
    group_ids = body.get("group_ids") or sorted(s.groups_of(token))
    if not set(group_ids) <= s.groups_of(token):
        return error(f"Cannot find one or more groups with IDs: {group_ids}.")
    if obj_id not in s.objs:
        return error(f"Obj {obj_id} not found", 404)
    if any(a["obj_id"] == obj_id and a["origin"] == origin for a in s.annotations):
        return error(f"Annotation already exists: (psycopg.errors.UniqueViolation) duplicate key value "
                     f"violates unique constraint \"annotations_obj_id_origin_key\"\nDETAIL:  Key "
                     f"(obj_id, origin)=({obj_id}, {origin}) already exists.")
    ann = {"id": s.next_id(), "obj_id": obj_id, "origin": origin, "data": dict(body["data"]),
           "author_id": s.tokens[token].user_id, "group_ids": set(group_ids)}
    s.annotations.append(ann)
    return ok({"annotation_id": ann["id"]})


def put_annotation(s: PortalState, token: str, obj_id: str, ann_id: int, body: dict[str, Any]) -> Answer:
    ann = next((a for a in s.annotations if a["id"] == ann_id and _visible(s, token, a)), None)
    if ann is None:
        return error("Could not find any accessible annotations.", 403)
    if "group_ids" in body and not set(body["group_ids"]) <= s.groups_of(token):
        return error(f"Cannot find one or more groups with IDs: {body['group_ids']}.")
    if ann["obj_id"] != obj_id:
        return error(f"Annotation resource ID does not match resource ID given in path ({obj_id})")
    if body.get("data") is not None:
        ann["data"] = dict(body["data"])
    if body.get("group_ids") is not None:
        ann["group_ids"] = set(body["group_ids"])
    return ok()
