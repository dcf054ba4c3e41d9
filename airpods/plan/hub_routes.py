"""What the hub routes where, from what each member said it serves (pure): HAProxy's routes.cfg
(one backend per set of members that serve the same models, balanced by the fewest requests in
flight), models.map (model id -> that backend) and models.json (GET /v1/models: the union, each id
once). hosts/refresh.py asks the members and writes these next to hub.cfg."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from airpods.plan.hub import Member, quoted

# What a model id may be to go in the map (one word of HAProxy's map file); others are skipped and said.
ROUTABLE = re.compile(r"^[A-Za-z0-9._:/@+=-]{1,200}\Z")


@dataclass(frozen=True)
class Routes:
    config: str  # routes.cfg
    map: str  # models.map
    listing: str  # models.json
    served: dict[str, tuple[str, ...]]  # model id -> the members' ids that serve it
    skipped: tuple[str, ...]  # ids that cannot be routed (said by `hosts refresh`)


def no_live_member(titles: Sequence[str]) -> str:
    message = ("no live host serves model %[var(txn.model),json(utf8s)] now (tried: " + ", ".join(titles) +
               "); `airpods hosts list` says why")
    return json.dumps({"error": {"message": message, "type": "service_unavailable", "code": 503}})


def routes(members: Sequence[Member], served: dict[str, list[str]]) -> Routes:
    """`served`: member id -> the model ids it listed (a member that did not answer: absent)."""
    by_model: dict[str, list[str]] = {}
    skipped: list[str] = []
    order = [m.id for m in members]
    for member in order:
        for model in served.get(member, []):
            if not ROUTABLE.match(model):
                skipped.append(model)
                continue
            ids = by_model.setdefault(model, [])
            if member not in ids:
                ids.append(member)
    sets: dict[tuple[str, ...], str] = {}
    for ids in by_model.values():
        sets.setdefault(tuple(ids), f"serves-{len(sets) + 1}")
    titles = {m.id: m.title for m in members}
    relays = {m.id: m.relay for m in members}
    lines = ["# Written by `airpods start` and `airpods hosts refresh` from what each member listed."]
    for ids, backend in sets.items():
        lines += ["", f"# {', '.join(titles[i] for i in ids)}", f"backend {backend}", "\tbalance leastconn",
                  f"\thttp-request return status 503 content-type application/json lf-string "
                  f"{quoted(no_live_member([titles[i] for i in ids]))} if {{ nbsrv() eq 0 }}"]
        # What the gateway's access log then names (keys usage): the model, and who answered it.
        lines += ["\thttp-response set-header X-Airpods-Model %[var(txn.model)]",
                  "\thttp-response set-header X-Airpods-Member %[srv_name]"]
        lines += [f"\tserver {i} 127.0.0.1:{relays[i]} track {i}/{i}" for i in ids]
    table = "".join(f"{model} {sets[tuple(ids)]}\n" for model, ids in sorted(by_model.items()))
    listing = json.dumps({"object": "list", "data": [
        {"id": model, "object": "model", "owned_by": "airpods", "hosts": [titles[i] for i in ids]}
        for model, ids in sorted(by_model.items())]})
    return Routes("\n".join(lines) + "\n", table, listing, {k: tuple(v) for k, v in by_model.items()},
                  tuple(dict.fromkeys(skipped)))
