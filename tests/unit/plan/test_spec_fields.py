"""The spec's fields: what is hashed (by the one written rule) and the codec the spec cache uses,
generated from the fields' types."""

from __future__ import annotations

import json
from dataclasses import fields, replace

import pytest

from airpods.plan.spec import LATER, NOTE, Confinement, ServiceSpec, from_record, hashed_fields, to_record
from tests.unit.plan.golden import STACKS, resolved


@pytest.mark.parametrize("stack", list(STACKS))
def test_every_spec_reads_back_equal_through_json(stack, tmp_path):
    for spec in resolved(stack, tmp_path).values():
        back = from_record(json.loads(json.dumps(to_record(spec))))
        assert back == spec and back.spec_hash == spec.spec_hash


def test_a_record_of_another_shape_is_refused_not_half_read(tmp_path):
    record = to_record(resolved("default", tmp_path)["llamacpp"])
    with pytest.raises(TypeError):
        from_record({**record, "field_from_the_future": 1})
    with pytest.raises(TypeError):
        from_record({**record, "health": "not an object"})


def test_notes_are_never_hashed_and_a_later_field_only_once_it_is_used(tmp_path):
    spec = resolved("default", tmp_path)["llamacpp"]
    roles = {f.name: f.metadata.get("role") for f in fields(ServiceSpec)}
    assert {n for n, r in roles.items() if r == NOTE} & set(hashed_fields(spec)) == set()
    assert replace(spec, wired_to=("x",), vram=((0, 1),)).spec_hash == spec.spec_hash
    assert {n for n, r in roles.items() if r == LATER} == {"config_files", "confinement"}
    plain = replace(spec, confinement=Confinement(), config_files=())
    assert "confinement" not in hashed_fields(plain) and "config_files" not in hashed_fields(plain)
    assert replace(plain, config_files=(("/a", "b"),)).spec_hash != plain.spec_hash
    assert replace(plain, confinement=Confinement(init=True)).spec_hash != plain.spec_hash
