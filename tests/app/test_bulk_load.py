"""What a bulk load leaves behind for the readers that follow it: data keys unwrapped
with one query for many streams, and (PostgreSQL) planner statistics refreshed once a
load is large beside the store, and after a rebuild of the views."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from conftest import ADMIN, PG_SKIP_REASON, PG_URL, School, Store

from anxin.roster_import import import_roster
from anxin.service import Anxin
from domain.roster import Student

HEADER = "student_no,name,gender,birth_date,grade,class,guardian_name,guardian_phone,tags"


def roster(n: int, start: int = 0, cls: str = "七年级3班") -> str:
    rows = [f"B{start + i:05d},学生{start + i},男,2013-05-06,七年级,{cls},家长,13912345678," for i in range(n)]
    return "\n".join([HEADER, *rows]) + "\n"


class KeyQueries:
    """Counts the single-key lookups (`Database.fetch_key`) and the batched ones."""

    def __init__(self, app: Anxin, monkeypatch: pytest.MonkeyPatch) -> None:
        self.single = self.batched = 0
        db = app.db
        one, many = db.fetch_key, db.fetch_keys

        def fetch_key(stream_id: str) -> Any:
            self.single += 1
            return one(stream_id)

        def fetch_keys(stream_ids: Any) -> Any:
            self.batched += 1
            return many(stream_ids)

        monkeypatch.setattr(db, "fetch_key", fetch_key)
        monkeypatch.setattr(db, "fetch_keys", fetch_keys)


def test_loading_many_streams_unwraps_their_keys_with_one_query(
    store: Store, school: School, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = import_roster(store.apps[0], ADMIN, school.id, roster(30))
    reader = store.open()  # another process: no key in hand
    counted = KeyQueries(reader, monkeypatch)
    loaded = reader.load_many([UUID(i) for i in result.student_ids], Student)
    assert sorted(s.name for s in loaded.values()) == sorted(f"学生{i}" for i in range(30))
    assert (counted.batched, counted.single) == (1, 0)


def test_a_shredded_stream_is_left_out_and_its_key_forgotten_even_one_in_hand(store: Store, school: School) -> None:
    app = store.apps[0]
    ids = import_roster(app, ADMIN, school.id, roster(5)).student_ids
    reader = store.open()
    reader.keystore.prefetch([UUID(i).hex for i in ids])
    assert all(UUID(i).hex in reader.keystore._ciphers for i in ids)
    app.erasure.shred(
        ADMIN, ids[0], reason="家长申请删除（测试）"
    )  # by another process: the reader still holds the key
    assert set(reader.load_many([UUID(i) for i in ids], Student)) == set(ids[1:])
    assert UUID(ids[0]).hex not in reader.keystore._ciphers  # found shredded, forgotten
    other = store.open()
    other.keystore.prefetch([UUID(i).hex for i in ids])
    assert UUID(ids[0]).hex not in other.keystore._ciphers
    assert set(other.load_many([UUID(i) for i in ids], Student)) == set(ids[1:])


def reltuples(store: Store, table: str) -> float:
    import psycopg

    assert PG_URL
    with psycopg.connect(PG_URL, autocommit=True) as c:
        return float(
            c.execute(
                "SELECT reltuples FROM pg_class WHERE oid = to_regclass(%s)", (f"{store.schema}.{table}",)
            ).fetchone()[0]
        )


@pytest.mark.skipif(not PG_URL, reason=PG_SKIP_REASON)
@pytest.mark.parametrize("store", ["postgres"], indirect=True)
def test_a_large_import_refreshes_postgresqls_statistics_and_a_small_one_does_not(store: Store, school: School) -> None:
    app = store.apps[0]
    import_roster(app, ADMIN, school.id, roster(60))  # 60 of ~70 rows: large beside the store
    known = reltuples(store, "anxin_events")
    assert known >= 60  # the statistics know the rows just loaded
    assert reltuples(store, "v_work_items") >= 0 and reltuples(store, "v_student_names") >= 60  # views too
    import_roster(app, ADMIN, school.id, roster(3, start=100))  # 3 more: under a tenth, left to autovacuum
    assert reltuples(store, "anxin_events") == known


@pytest.mark.skipif(not PG_URL, reason=PG_SKIP_REASON)
@pytest.mark.parametrize("store", ["postgres"], indirect=True)
def test_a_rebuild_refreshes_the_view_tables_statistics(store: Store, school: School) -> None:
    app = store.apps[0]
    assert reltuples(store, "v_student_names") < 0  # four students, never analyzed
    app.views.rebuild()
    assert reltuples(store, "v_student_names") >= 4
