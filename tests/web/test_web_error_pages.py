"""The 403, 404 and 410 pages keep the site's layout: the menu of the person signed in, a
title and a reason in their language (never the framework's English "Not Found"), and a
way on (the part of the site the address belongs to, and the start page); for an address
no route answers, for a record that does not exist, and for a page the gate refuses."""

from __future__ import annotations

import uuid
from typing import Any

MENU = 'aria-label="主菜单"'


def test_an_unknown_address_answers_in_chinese_with_the_menu(browse: Any) -> None:
    r = browse("teacher1").get("/no-such-page")
    assert r.status_code == 404
    assert MENU in r.text and 'href="/pairings"' in r.text  # the teacher's own menu
    assert "未找到" in r.text and "没有这个页面" in r.text
    assert "Not Found" not in r.text
    assert '<a href="/">返回首页</a>' in r.text


def test_an_unknown_address_answers_in_english_in_english_mode(browse: Any) -> None:
    b = browse("teacher1")
    b.client.cookies.set("anxin_lang", "en")
    r = b.get("/cases/new/no/such/page")
    assert r.status_code == 404
    assert 'aria-label="Main menu"' in r.text and 'href="/pairings"' in r.text
    assert "There is no such page" in r.text and "Not found" in r.text
    assert "没有这个页面" not in r.text


def test_an_unknown_address_answers_someone_signed_out_without_a_menu(site: Any) -> None:
    r = site.browser().get("/no-such-page")
    assert r.status_code == 404
    assert "没有这个页面" in r.text and MENU not in r.text


def test_a_case_that_does_not_exist_is_not_found_with_a_way_back_to_the_board(browse: Any) -> None:
    r = browse("safety1").get(f"/cases/{uuid.uuid4()}")
    assert r.status_code == 404
    assert MENU in r.text
    assert "未找到" in r.text and "找不到该记录" in r.text
    assert '<a href="/cases">返回欺凌案件</a>' in r.text


def test_a_refused_page_says_so_in_chinese_with_the_menu(browse: Any) -> None:
    r = browse("counselor1").get("/board")
    assert r.status_code == 403
    assert MENU in r.text and 'href="/support"' in r.text  # the counselor's menu
    assert "无权访问" in r.text and "无权执行此操作" in r.text
    assert "审计日志" in r.text
    assert '<a href="/">返回首页</a>' in r.text


def test_a_refused_step_of_a_case_keeps_the_menu(browse: Any, site: Any) -> None:
    # An unknown step of a case: the page says so in the layout, not a bare message.
    r = browse("safety1").post(f"/cases/{uuid.uuid4()}/no_such_step", {})
    assert r.status_code == 404
    assert MENU in r.text and "未知的操作" in r.text
