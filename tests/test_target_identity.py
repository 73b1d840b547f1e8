"""The state's record of each target's identity (schema version 5), on both backends:
recorded by a writer with its serial bumped, read by a reader, carried by a migration
of an older state, by `state migrate` and by the in-memory copy `plan --refresh` uses."""
from __future__ import annotations

from reconciler.state import SCHEMA_VERSION, State
from test_state import files_of, old_database

META = {"provider": "meta_catalog", "base_url": "http://127.0.0.1:9", "catalog_id": "1234567890"}


def test_an_identity_is_recorded_bumping_the_targets_serial(state):
    assert state.identities() == {}
    with state.locked("reconciler import (pid 1)", ["meta"]):  # a writer, as apply and import are
        state.record_identity("meta", META)
    assert state.identities() == {"meta": META} and state.target_serials(["meta"]) == {"meta": 1}
    with state.locked("reconciler import (pid 1)", ["meta"]):
        state.record_identity("meta", {**META, "catalog_id": "999"})
    assert state.identities()["meta"]["catalog_id"] == "999" and state.target_serials(["meta"]) == {"meta": 2}
    reader = State(state.location, create=False)
    assert reader.identities() == state.identities()
    assert state.snapshot().identities() == state.identities()  # what plan --refresh plans against
    reader.close()


def test_a_state_of_version_4_gains_identities_when_written_and_in_memory_when_read(tmp_path):
    old_database(tmp_path / "old.db", version=4)
    before = files_of(tmp_path)
    reader = State(tmp_path / "old.db", create=False)
    assert reader.schema_version == SCHEMA_VERSION >= 5 and reader.identities() == {}
    reader.close()
    assert files_of(tmp_path) == before
    writer = State(tmp_path / "old.db")
    assert writer.schema_version == SCHEMA_VERSION and writer.identities() == {}  # the next write to a target records it
    writer.record_identity("t", META)
    assert State(tmp_path / "old.db", create=False).identities() == {"t": META}
