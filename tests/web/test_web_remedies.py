"""The remedies of a bullying case through its page (issue 17, part C): the safety lead records
the reports to the police and the education bureau that serious bullying makes due, a
disposition for the bullying student, and a county review with its panel and outcome; a
refused step writes nothing and says why, in Chinese, naming the student; no code shows."""

from __future__ import annotations

import re
import uuid
from typing import Any

from determination_support import ready_to_determine
from test_web_cases import _case, _report, _step, _students
from web_support import Browser, DemoSite

CODES = ("police", "bureau", "education_discipline", "school_service", "committee", "sent_back", "serious_bullying")


def _serious_case(site: DemoSite, browse: Any, tag: str) -> tuple[Browser, str, Any, Any]:
    s, p = browse("safety1"), browse("principal1")
    target, bully = _students(site, "八年级1班")[:2]
    r = _report(site, s, [(target.student_no, "targeted"), (bully.student_no, "bullying")], f"多次殴打 {tag}")
    case_id = r.headers["location"].rsplit("/", 1)[1]
    _step(site, s, case_id, "start_investigation", {})
    _step(site, s, case_id, "complete_investigation", {"findings": f"属实 {tag}"})
    # the guardians of both sides and the committee's meeting (their pages: test_web_determination)
    ready_to_determine(site.app, site.app.gate.actor(site.app.accounts.account("safety1")[0]), case_id)
    _step(site, s, case_id, "determine", {"bullying": "yes", "severity": "serious", "reason": "多次殴打，情节较重"})
    _step(site, p, case_id, "approve", {"reason": "同意"})
    return s, case_id, target, bully


def _visible(page: str) -> str:
    """The page's text as a reader sees it (no tags, no attribute values)."""
    return re.sub(r"<[^>]+>", " ", page)


def test_reports_owed_show_and_are_recorded_from_the_page(site: DemoSite, browse) -> None:
    tag = uuid.uuid4().hex[:6]
    # given serious bullying approved: both reports are owed, and the page says so
    s, case_id, _, _ = _serious_case(site, browse, tag)
    page = s.get(f"/cases/{case_id}").text
    assert "待报告" in page and "公安机关" in page and "教育行政部门" in page
    # when the safety lead records the report to the police, with its receipt
    page = _step(
        site,
        s,
        case_id,
        "authority_report",
        {"authority": "police", "unit": "城关派出所", "method": "in_person", "receipt": f"JJ-{tag}"},
    )
    # then it is in the case and on the page, and only the bureau's is owed
    assert _case(site, case_id).outstanding_authority_reports() == ["bureau"]
    assert f"JJ-{tag}" in page and "城关派出所" in page
    assert not any(code in _visible(page) for code in CODES)


def test_a_report_without_a_unit_is_refused_and_nothing_written(site: DemoSite, browse) -> None:
    s, case_id, _, _ = _serious_case(site, browse, uuid.uuid4().hex[:6])
    version = _case(site, case_id).version
    page = s.get(f"/cases/{case_id}").text
    v = re.search(r'name="expected_version" value="(\d+)"', page).group(1)  # type: ignore[union-attr]
    r = s.post(
        f"/cases/{case_id}/authority_report",
        {"expected_version": v, "authority": "police", "unit": " ", "method": "phone"},
    )
    assert r.status_code == 400 and "接受报告的单位名称" in r.text
    assert _case(site, case_id).version == version


def test_a_disposition_is_recorded_and_one_for_the_targeted_student_is_refused_by_name(site: DemoSite, browse) -> None:
    s, case_id, target, bully = _serious_case(site, browse, uuid.uuid4().hex[:6])
    page = _step(
        site,
        s,
        case_id,
        "disposition",
        {
            "student_id": bully.id,
            "kind": "education_discipline",
            "level": "heavier:school_service",
            "decided_by": "committee",
        },
    )
    (d,) = _case(site, case_id).dispositions
    assert (d["kind"], d["level"], d["measure"]) == ("education_discipline", "heavier", "school_service")
    assert "承担校内公益服务任务" in page and not any(code in _visible(page) for code in CODES)
    version = _case(site, case_id).version
    v = re.search(r'name="expected_version" value="(\d+)"', page).group(1)  # type: ignore[union-attr]
    r = s.post(
        f"/cases/{case_id}/disposition",
        {"expected_version": v, "student_id": target.id, "kind": "criticism", "decided_by": "committee"},
    )
    assert r.status_code == 400 and target.name in r.text and "不是经批准认定的欺凌案件中的欺凌学生" in r.text
    assert _case(site, case_id).version == version


def test_a_county_review_with_its_panel_and_outcome_through_the_page(site: DemoSite, browse) -> None:
    tag = uuid.uuid4().hex[:6]
    s, case_id, _, bully = _serious_case(site, browse, tag)
    _step(
        site,
        s,
        case_id,
        "review_apply",
        {"party_id": bully.id, "county_body": "区防治学生欺凌工作办公室", "grounds": f"不服 {tag}"},
    )
    review_id = _case(site, case_id).pending_review_id
    assert review_id and _case(site, case_id).status == "appealed"
    members = {
        "capacity_0": "school",
        "member_0": "李老师",
        "capacity_1": "parent",
        "member_1": "赵家长",
        "capacity_2": "expert",
        "member_2": "周律师",
    }
    page = _step(site, s, case_id, "review_panel", {"review_id": review_id, **members})
    assert "校外专家" in page and "周律师" in page
    page = _step(
        site,
        s,
        case_id,
        "review_outcome",
        {"review_id": review_id, "outcome": "sent_back", "reason": f"证据不足 {tag}"},
    )
    c = _case(site, case_id)
    assert c.status == "awaiting_determination" and c.county_reviews[0]["outcome"] == "sent_back"
    assert "发回重新认定" in page and not any(code in _visible(page) for code in CODES)
