"""The administrator's roster import page, in two steps: upload → preview (new, changed with
each change, unchanged, missing; or every problem of every bad row) → confirm (applied in
one transaction, the missing students marked as left only when ticked). The file is read
in memory: no temporary file, whatever its size; the preview keeps it sealed in the form."""

from __future__ import annotations

import io
import os
import re
import tempfile
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import openpyxl
import pytest
from conftest import ADMIN, STORES, Clock, School, fresh_app, make_school
from fastapi.testclient import TestClient
from web_support import Browser

from anxin.passwords import hash_password
from anxin.service import Anxin
from domain.roster import Student
from web.app import create_app

PASSWORD = "admin-test-pass-1"
ZH = "学号,姓名,性别,出生日期,年级,班级,监护人姓名,监护人电话,标签"
UPDATED = [  # the fixture school a term later (see tests/app/test_roster_import.py)
    "2026001,张小明,男,2013-05-06,七年级,七年级1班,张家长,13912345678,留守儿童",
    "2026002,李小红,女,2013-05-06,七年级,七年级2班,李家长,13912345678,留守儿童",
    "2026003,王小刚,男,2013-05-06,七年级,七年级2班,王家长,13700000000,留守儿童",
    "2026005,陈新生,女,2013-08-08,七年级,七年级1班,陈家长,13600000000,",
]


@pytest.fixture(params=STORES)
def own(request: pytest.FixtureRequest) -> Iterator[tuple[Anxin, School, Browser, TestClient]]:
    clock = Clock(datetime.now(UTC))
    with fresh_app(request.param, clock) as app:
        school = make_school(app)
        app.roster.add_staff(
            ADMIN,
            username="root",
            name="管理员",
            school_id=None,
            roles=["administrator"],
            password_hash=hash_password(PASSWORD),
            district="default",
        )
        web = create_app(app, background_seconds=None)
        with TestClient(web, base_url="http://testserver") as client:
            yield app, school, Browser(client, None).login("root", PASSWORD), client


def csv_file(lines: list[str], encoding: str = "utf-8", header: str = ZH) -> bytes:
    return ("\r\n".join([header, *lines]) + "\r\n").encode(encoding)


def upload(b: Browser, school: School, data: bytes, name: str = "花名册.csv") -> Any:
    kind = "text/csv" if name.endswith(".csv") else "application/octet-stream"
    return b.post("/admin/roster", {"school": school.id}, files={"file": (name, data, kind)})


def hidden(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert found, f"no {name} on the page"
    return found.group(1)


def confirm(b: Browser, preview: str, **extra: Any) -> Any:
    data = {k: hidden(preview, k) for k in ("school", "fingerprint", "sealed")}
    data["leave_reason"] = extra.pop("leave_reason", "")
    return b.post("/admin/roster/confirm", {**data, **extra})


def roster(app: Anxin, school: School) -> dict[str, Student]:
    ids = [UUID(i) for i in app.roster.school_roster(school.id)]
    return {s.student_no: s for s in app.load_many(ids, Student).values()}


def versions(app: Anxin, school: School) -> dict[str, int]:
    return {no: s.version for no, s in roster(app, school).items()}


def count(page: str, which: str) -> int:
    found = re.search(rf'id="count-{which}">(\d+)', page)
    assert found, which
    return int(found.group(1))


def test_an_upload_previews_and_only_the_confirmation_applies_the_missing_left_only_when_ticked(own) -> None:
    app, school, b, _client = own
    before = versions(app, school)

    preview = upload(b, school, csv_file(UPDATED, "gbk"))  # as Chinese Excel saves a CSV

    assert preview.status_code == 200, preview.text
    page = preview.text
    assert [count(page, k) for k in ("new", "changed", "unchanged", "missing")] == [1, 2, 1, 1]
    assert "CSV（GB18030/GBK）" in page
    assert re.search(r"班级：七年级1班 → <strong>七年级2班</strong>", page)
    assert re.search(r"监护人电话：13912345678 → <strong>13700000000</strong>", page)
    assert "陈新生" in page and "赵小丽" in page
    assert versions(app, school) == before  # a preview writes nothing
    assert "陈新生" not in hidden(page, "sealed") and "2026005" not in hidden(page, "sealed")

    done = confirm(b, page, leave_reason="转学")  # the missing student not ticked
    assert done.status_code == 303
    assert "花名册已导入：新增 1 名，更正 2 名，不变 1 名，标记离校 0 名" in b.get("/admin/roster").text
    got = roster(app, school)
    assert got["2026005"].name == "陈新生" and got["2026002"].class_name == "七年级2班"
    assert got["2026003"].guardians == [{"name": "王家长", "phone": "13700000000"}]
    assert got["2026004"].active  # missing from the file, still at school

    again = upload(b, school, csv_file(UPDATED)).text
    assert [count(again, k) for k in ("new", "changed", "unchanged", "missing")] == [0, 0, 4, 1]
    leaver = school.student("2026004")
    done = confirm(b, again, leaver=leaver, leave_reason="转学至外省")
    assert done.status_code == 303
    assert "标记离校 1 名" in b.get("/admin/roster").text
    assert not roster(app, school)["2026004"].active
    [left] = [e for e in app.events.get(UUID(leaver)) if type(e).__name__ == "Left"]
    assert left.reason == "转学至外省"


def test_a_confirmation_after_the_roster_changed_applies_nothing_and_shows_the_new_preview(own) -> None:
    app, school, b, _client = own
    page = upload(b, school, csv_file(UPDATED)).text
    app.roster.correct_student(ADMIN, school.student("2026002"), {"class_name": "七年级2班"}, "调班")

    r = confirm(b, page)

    assert r.status_code == 409 and "预览之后本校花名册已有变动" in r.text
    assert count(r.text, "changed") == 1  # 李小红 was moved meanwhile: only 王小刚's phone now
    assert "2026005" not in roster(app, school)
    assert confirm(b, r.text).status_code == 303  # the new preview confirms
    assert "2026005" in roster(app, school)


def test_a_preview_confirms_only_in_its_own_session(own) -> None:
    app, school, b, client = own
    page = upload(b, school, csv_file(UPDATED)).text
    other = Browser(TestClient(client.app, base_url="http://testserver"), None).login("root", PASSWORD)

    r = confirm(other, page)

    assert r.status_code == 400 and "预览已失效" in r.text
    assert "2026005" not in roster(app, school)


def test_a_half_valid_upload_applies_nothing_and_lists_every_problem_of_each_row(own) -> None:
    app, school, b, _client = own
    before = versions(app, school)
    data = csv_file(
        [
            "2026801,好学生,男,2013-01-01,七年级,七年级3班,家长,13800000001,",
            "2026802,,x,2013-13-45,七年级,七年级3班,家长,abc,",
            "2026803,坏电话,女,2013-01-01,七年级,七年级3班,家长,12,",
        ]
    )

    r = upload(b, school, data)

    assert r.status_code == 400 and "导入被拒绝，未写入任何数据：共 2 行有错误" in r.text
    rows = re.findall(r"<tr[^>]*><td[^>]*>第 (\d+) 行</td><td[^>]*><ul class=\"problems\">(.*?)</ul>", r.text)
    assert [n for n, _ in rows] == ["3", "4"]
    problems = dict(rows)
    for text in (
        "姓名：必填",
        "性别：「x」无法识别",
        "出生日期：「2013-13-45」不是有效日期",
        "监护人电话：「abc」格式不正确",
    ):
        assert text in problems["3"]
    assert "监护人电话：「12」格式不正确" in problems["4"]
    assert versions(app, school) == before


def test_an_xlsx_upload_with_numbers_and_date_cells(own) -> None:
    app, school, b, _client = own
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(ZH.split(","))
    ws.append([2026901, "表格生", "女", datetime(2013, 3, 4), "七年级", "七年级3班", "表格家长", 13800000009, None])
    out = io.BytesIO()
    wb.save(out)

    page = upload(b, school, out.getvalue(), "花名册.xlsx").text
    assert count(page, "new") == 1 and "Excel（.xlsx）" in page and "2026901" in page
    assert confirm(b, page).status_code == 303

    s = roster(app, school)["2026901"]
    assert (s.birth_date, s.guardians) == (date(2013, 3, 4), [{"name": "表格家长", "phone": "13800000009"}])


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_the_templates_download_and_come_back_through_the_import(own, kind: str) -> None:
    app, school, b, _client = own
    r = b.get(f"/admin/roster/template.{kind}")
    assert r.status_code == 200 and f"anxin-roster-template.{kind}" in r.headers["content-disposition"]
    if kind == "csv":
        assert r.content.startswith(b"\xef\xbb\xbf" + ZH.encode())
        filled = r.content + "2026950,模板生,男,2013-06-01,七年级,七年级3班,模板家长,13800000010,\r\n".encode()
    else:
        wb = openpyxl.load_workbook(io.BytesIO(r.content))
        ws = wb.active
        assert ws is not None
        ws.append(["2026950", "模板生", "男", date(2013, 6, 1), "七年级", "七年级3班", "模板家长", "13800000010"])
        out = io.BytesIO()
        wb.save(out)
        filled = out.getvalue()

    page = upload(b, school, filled, f"t.{kind}").text
    assert count(page, "new") == 1
    assert confirm(b, page).status_code == 303
    assert roster(app, school)["2026950"].name == "模板生"


def test_an_uploaded_file_never_touches_the_disk_however_large(own, monkeypatch: pytest.MonkeyPatch) -> None:
    """Starlette spools an upload over 1 MB to a temporary file; the page's form is read
    in memory instead. The temporary directory is watched during the upload of a 3 MB
    roster: no file appears in it, none is opened there (even unlinked), and no spool
    rolls over to disk."""
    app, school, b, _client = own
    watched = Path(tempfile.mkdtemp(prefix="anxin-watch-"))
    monkeypatch.setattr(tempfile, "tempdir", str(watched))
    rollovers: list[int] = []
    original = tempfile.SpooledTemporaryFile.rollover

    def rollover(self: Any) -> None:
        rollovers.append(1)
        original(self)

    monkeypatch.setattr(tempfile.SpooledTemporaryFile, "rollover", rollover)
    seen: set[str] = set()
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            seen.update(os.listdir(watched))
            for fd in os.listdir("/proc/self/fd"):
                try:
                    target = os.readlink(f"/proc/self/fd/{fd}")
                except OSError:
                    continue
                if target.startswith(str(watched)):
                    seen.add(target)

    filler = "备注" * 600  # a column the import does not read, to make the file large
    lines = [f"2027{i:04d},大文件{i},男,2013-01-01,七年级,七年级3班,家长,13800000000,,{filler}" for i in range(1500)]
    data = csv_file(lines, header=ZH + ",备注")
    assert len(data) > 3 * 1024 * 1024
    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        page = upload(b, school, data)
    finally:
        stop.set()
        thread.join()

    assert page.status_code == 200 and count(page.text, "new") == 1500 and "备注" in page.text
    assert rollovers == [] and seen == set() and os.listdir(watched) == []
    os.rmdir(watched)


def test_a_form_over_the_limit_is_refused_before_it_is_read(own) -> None:
    app, school, b, _client = own
    r = upload(b, school, b"x" * (13 * 1024 * 1024))
    assert r.status_code == 413 and "提交的内容过大" in r.text
