"""Consultation through HTTP: pages and JSON API, with bad input of every kind."""

from __future__ import annotations

import io

from conftest import login
from PIL import Image


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buf, format="PNG")
    return buf.getvalue()


def _api(world) -> str:  # type: ignore[no-untyped-def]
    return f"/api/v1/communities/{world.a}/consultation"


def test_resident_submits_demand_with_photo_and_sees_reply(client, world) -> None:  # type: ignore[no-untyped-def]
    csrf = login(client, "resident")
    base = f"/c/{world.a}/consultation"
    r = client.get(f"{base}/demands/new")
    assert r.status_code == 200 and "photo" in r.text
    r = client.post(
        f"{base}/demands/new",
        data={"text": "1号楼路灯坏了，晚上很黑", "csrf_token": csrf, "anonymous": "on"},
        files={"photo": ("p.png", _png(), "image/png")},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text[:400]
    page = client.get(r.headers["location"])
    assert "1号楼路灯坏了" in page.text
    demand_id = int(r.headers["location"].rsplit("/", 1)[1])
    d = client.get(f"{_api(world)}/demands/{demand_id}").json()
    assert d["category"] == "lighting" and d["author"] is None and d["has_photo"]
    assert client.get(f"{_api(world)}/demands/{demand_id}/photo").status_code == 200
    # not an image: a form error, nothing saved
    r = client.post(
        f"{base}/demands/new",
        data={"text": "看图", "csrf_token": csrf},
        files={"photo": ("x.png", b"<script>alert(1)</script>", "image/png")},
    )
    assert r.status_code == 422 and "not a valid image" in r.text
    # empty and enormous texts
    r = client.post(f"{base}/demands/new", data={"text": "   ", "csrf_token": csrf})
    assert r.status_code == 422
    r = client.post(
        f"{_api(world)}/demands", json={"text": "x" * 5001}, headers={"x-csrf-token": csrf}
    )
    assert r.status_code == 422 and r.json()["code"] == "validation_failed"
    assert len(client.get(f"{_api(world)}/demands").json()) == 1
    # residents cannot reply
    r = client.post(
        f"{_api(world)}/demands/{demand_id}/reply",
        json={"reply": "x"},
        headers={"x-csrf-token": csrf},
    )
    assert r.status_code == 403

    client.cookies.clear()
    staff = login(client, "staff")
    page = client.get(f"/c/{world.a}/consultation/demands")
    assert "1号楼路灯坏了" in page.text and "居民" not in page.text  # anonymous: no name
    r = client.post(
        f"{_api(world)}/demands/{demand_id}/reveal",
        json={"reason": "abusive content"},
        headers={"x-csrf-token": staff},
    )
    assert r.status_code == 200 and r.json()["author"].startswith("居民")
    r = client.post(
        f"{base}/demands/{demand_id}/reply",
        data={"reply": "已安排维修", "status": "in_progress", "csrf_token": staff},
        follow_redirects=False,
    )
    assert r.status_code == 303
    r = client.post(
        f"{_api(world)}/demands/{demand_id}/work-order",
        json={"severity": "minor"},
        headers={"x-csrf-token": staff},
    )
    assert r.status_code == 200 and r.json()["work_order_id"]

    client.cookies.clear()
    login(client, "resident")
    d = client.get(f"{_api(world)}/demands/{demand_id}").json()
    assert d["reply"] == "已安排维修" and d["status"] == "in_progress"
    assert client.get(f"{_api(world)}/notifications/count").json()["unread"] >= 1
    assert "已安排维修" in client.get(f"/c/{world.a}/consultation/notifications").text


def test_topic_deliberation_escapes_and_moderates(client, world) -> None:  # type: ignore[no-untyped-def]
    staff = login(client, "staff")
    r = client.post(
        f"{_api(world)}/topics",
        json={"title": "停车位规划", "background": "<b>背景</b>"},
        headers={"x-csrf-token": staff},
    )
    assert r.status_code == 201
    tid = r.json()["id"]
    client.cookies.clear()
    csrf = login(client, "resident")
    evil = "<script>alert('x')</script>"
    r = client.post(
        f"{_api(world)}/topics/{tid}/comments", json={"text": evil}, headers={"x-csrf-token": csrf}
    )
    assert r.status_code == 201
    cid = r.json()["id"]
    page = client.get(f"/c/{world.a}/consultation/topics/{tid}")
    assert evil not in page.text and "&lt;script&gt;" in page.text
    assert "<b>背景</b>" not in page.text
    r = client.post(
        f"{_api(world)}/topics/{tid}/comments", json={"text": ""}, headers={"x-csrf-token": csrf}
    )
    assert r.status_code == 422
    r = client.post(
        f"{_api(world)}/topics/{tid}/comments/{cid}/report",
        json={"reason": "spam"},
        headers={"x-csrf-token": csrf},
    )
    assert r.status_code == 200
    r = client.post(
        f"{_api(world)}/topics/{tid}/comments/{cid}/hide",
        json={"reason": "x"},
        headers={"x-csrf-token": csrf},
    )
    assert r.status_code == 403
    # statements and the opinion map
    r = client.post(
        f"/c/{world.a}/consultation/topics/{tid}/statements",
        data={"text": "应该增加地下车位", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert r.status_code == 303
    m = client.get(f"{_api(world)}/topics/{tid}/opinion-map").json()
    assert m["participants"] == 0
    client.cookies.clear()
    staff = login(client, "staff")
    r = client.post(
        f"{_api(world)}/topics/{tid}/comments/{cid}/hide",
        json={"reason": "脚本注入"},
        headers={"x-csrf-token": staff},
    )
    assert r.status_code == 200 and r.json()["hidden"]
    client.cookies.clear()
    login(client, "resident")
    comments = client.get(f"{_api(world)}/topics/{tid}/comments").json()
    assert comments[0]["text"] is None and comments[0]["hidden_reason"] == "脚本注入"


def test_polls_double_vote_closed_and_non_owner(client, world) -> None:  # type: ignore[no-untyped-def]
    staff = login(client, "staff")
    r = client.post(
        f"{_api(world)}/polls",
        json={"title": "业主大会：更换物业", "kind": "owners"},
        headers={"x-csrf-token": staff},
    )
    assert r.status_code == 201
    owners_poll = r.json()
    r = client.post(
        f"{_api(world)}/polls",
        json={"title": "活动日", "options": ["周六", "周日"], "secret": True},
        headers={"x-csrf-token": staff},
    )
    poll = r.json()
    # staff user has no resident record: refused, not a 500
    r = client.post(
        f"{_api(world)}/polls/{poll['id']}/ballots",
        json={"choices": [poll["options"][0]["id"]]},
        headers={"x-csrf-token": staff},
    )
    assert r.status_code == 403
    client.cookies.clear()
    csrf = login(client, "resident")
    page = client.get(f"/c/{world.a}/consultation/polls/{poll['id']}")
    assert page.status_code == 200 and "周六" in page.text
    r = client.post(
        f"/c/{world.a}/consultation/polls/{poll['id']}/vote",
        data={"choice": str(poll["options"][1]["id"]), "csrf_token": csrf},
        follow_redirects=False,
    )
    assert r.status_code == 303
    r = client.post(
        f"{_api(world)}/polls/{poll['id']}/ballots",
        json={"choices": [poll["options"][0]["id"]]},
        headers={"x-csrf-token": csrf},
    )
    assert r.status_code == 409 and r.json()["code"] == "already_voted"
    r = client.post(
        f"{_api(world)}/polls/{poll['id']}/ballots",
        json={"choices": [999999]},
        headers={"x-csrf-token": csrf},
    )
    assert r.status_code in (409, 422)
    yes = owners_poll["options"][0]["id"]
    r = client.post(
        f"{_api(world)}/polls/{owners_poll['id']}/ballots",
        json={"choices": [yes]},
        headers={"x-csrf-token": csrf},
    )
    assert r.status_code == 201  # the resident owns unit 1-101
    client.cookies.clear()
    staff = login(client, "staff")
    r = client.post(f"{_api(world)}/polls/{poll['id']}/close", headers={"x-csrf-token": staff})
    assert r.status_code == 200 and r.json()["result"]["ballots"] == 1
    r = client.post(
        f"/c/{world.a}/consultation/polls/{owners_poll['id']}/close",
        data={"csrf_token": staff},
        follow_redirects=False,
    )
    assert r.status_code == 303
    page = client.get(f"/c/{world.a}/consultation/polls/{owners_poll['id']}")
    assert "Not approved" in page.text  # 1 of 2 owners: participation below 2/3
    client.cookies.clear()
    csrf = login(client, "resident")
    r = client.post(
        f"{_api(world)}/polls/{poll['id']}/ballots",
        json={"choices": [poll["options"][0]["id"]]},
        headers={"x-csrf-token": csrf},
    )
    assert r.status_code == 409 and r.json()["code"] == "poll_closed"


def test_polis_import_and_malformed_files(client, world) -> None:  # type: ignore[no-untyped-def]
    staff = login(client, "staff")
    tid = client.post(
        f"{_api(world)}/topics", json={"title": "导入"}, headers={"x-csrf-token": staff}
    ).json()["id"]
    comments = (
        "timestamp,datetime,comment-id,author-id,agrees,disagrees,moderated,comment-body\n"
        "1,x,0,1,1,0,1,More trees\n1,x,1,1,0,1,1,Less parking\n1,x,2,2,0,0,-1,spam\n"
    )
    votes = "timestamp,datetime,comment-id,voter-id,vote\n" + "".join(
        f"{i},x,{c},{p},{1 if (p + c) % 2 else -1}\n"
        for i, (p, c) in enumerate((p, c) for p in range(6) for c in range(2))
    )
    url = f"{_api(world)}/topics/{tid}/polis-import"
    r = client.post(
        url,
        files={"comments": ("comments.csv", comments), "votes": ("votes.csv", votes)},
        headers={"x-csrf-token": staff},
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"statements": 3, "votes": 12, "meta": 0, "meta_statements": []}
    m = client.get(f"{_api(world)}/topics/{tid}/opinion-map").json()
    assert m["participants"] == 6
    page = client.get(f"/c/{world.a}/consultation/topics/{tid}")
    assert page.status_code == 200 and "<circle" in page.text and "More trees" in page.text
    bad_votes = "timestamp,datetime,comment-id,voter-id,vote\n1,x,0,1,7\n"
    r = client.post(
        url,
        files={"comments": ("comments.csv", comments), "votes": ("votes.csv", bad_votes)},
        headers={"x-csrf-token": staff},
    )
    assert r.status_code == 422 and r.json()["code"] == "bad_polis_export"
    r = client.post(
        url,
        files={"comments": ("comments.csv", b"\xff\xfe\x00garbage"), "votes": ("v.csv", votes)},
        headers={"x-csrf-token": staff},
    )
    assert r.status_code == 422
    m = client.get(f"{_api(world)}/topics/{tid}/opinion-map").json()
    assert m["participants"] == 6  # nothing half-saved


def test_pages_render_for_staff_and_access_rules(client, world) -> None:  # type: ignore[no-untyped-def]
    staff = login(client, "staff")
    base = f"/c/{world.a}/consultation"
    r = client.post(
        f"{base}/actions",
        data={"title": "修复路灯", "owner_name": "物业", "csrf_token": staff},
        follow_redirects=False,
    )
    assert r.status_code == 303
    r = client.post(
        f"{base}/actions",
        data={"title": "", "owner_name": "", "csrf_token": staff},
        follow_redirects=True,
    )
    assert r.status_code == 200 and "修复路灯" in r.text
    for path in ("", "/demands", "/demands/new", "/actions", "/notifications", "/dashboard"):
        assert client.get(base + path).status_code == 200, path
    assert client.get(f"/c/{world.b}/consultation").status_code == 404
    client.cookies.clear()
    login(client, "resident")
    assert client.get(f"{base}/dashboard").status_code == 403
    assert client.get(f"{base}/actions").status_code == 200
    client.cookies.clear()
    login(client, "pro")
    assert client.get(base).status_code == 200


def test_the_bell_is_on_every_page_with_unread_count_and_inbox(client, db, world) -> None:  # type: ignore[no-untyped-def]
    from linli.consultation import service

    with db.session() as s:
        ids = []
        for title, link in (
            ("Your demand has a reply.", f"/c/{world.a}/consultation/demands"),
            ("An action item was assigned to you.", "https://evil.example/phish"),
        ):
            service.notify(s, world.a, [world.users["resident"]], title, "<b>正文</b>", link)
        service.notify(s, world.b, [world.users["staff_b"]], "Your demand has a reply.", "x")
        s.commit()
        from linli.consultation.models import Notification

        ids = [
            n.id
            for n in s.query(Notification)
            .filter(Notification.user_id == world.users["resident"])
            .order_by(Notification.id)
        ]
    assert client.get("/notifications", follow_redirects=False).status_code in (303, 401)
    token = login(client, "resident")
    # the bell is in the top bar of pages of other domains too (base.html), loaded by htmx
    for page in ("/account", f"/c/{world.a}", f"/c/{world.a}/consultation/actions"):
        assert 'hx-get="/notifications/bell"' in client.get(page).text
    bell = client.get("/notifications/bell").text
    assert 'class="bell-count">2<' in bell and 'href="/notifications"' in bell
    inbox = client.get("/notifications").text  # user's language is English in the fixture
    assert "Your demand has a reply." in inbox and "An action item was assigned to you." in inbox
    assert "&lt;b&gt;正文&lt;/b&gt;" in inbox and "<b>正文</b>" not in inbox
    # opening one marks it read and goes to its in-app link; an outside link is never followed
    r = client.get(f"/notifications/{ids[0]}", follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, f"/c/{world.a}/consultation/demands")
    r = client.get(f"/notifications/{ids[1]}", follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/notifications")
    assert "bell-count" not in client.get("/notifications/bell").text
    # someone else's notification does not exist for this user
    with db.session() as s:
        from linli.consultation.models import Notification

        other = s.query(Notification).filter(Notification.user_id == world.users["staff_b"]).one()
    assert client.get(f"/notifications/{other.id}", follow_redirects=False).status_code == 404
    # the community page leads to the same inbox; mark all as read
    r = client.get(f"/c/{world.a}/consultation/notifications", follow_redirects=False)
    assert r.headers["location"] == "/notifications"
    with db.session() as s:
        service.notify(s, world.a, [world.users["resident"]], "Your demand has been handled.")
        s.commit()
    r = client.post("/notifications/read", data={"csrf_token": token}, follow_redirects=True)
    assert r.status_code == 200 and "bell-count" not in client.get("/notifications/bell").text
    assert client.post("/notifications/read", follow_redirects=False).status_code == 403


def test_the_inbox_is_in_the_users_language(client, db, world) -> None:  # type: ignore[no-untyped-def]
    from linli.consultation import service
    from linli.core.models import User

    with db.session() as s:
        u = s.get(User, world.users["resident"])
        assert u is not None
        u.language = "zh_CN"
        service.notify(s, world.a, [u.id], "An action item you follow has progressed.")
        s.commit()
    login(client, "resident")
    page = client.get("/notifications").text
    assert "您关注的落实事项有新进展。" in page
    assert "1 条未读" in page
    assert 'class="bell-count">1<' in client.get("/notifications/bell").text


def test_polis_import_page_lists_meta_statements_and_staff_restore_them(client, world) -> None:  # type: ignore[no-untyped-def]
    staff = login(client, "staff")
    tid = client.post(
        f"{_api(world)}/topics", json={"title": "加装电梯"}, headers={"x-csrf-token": staff}
    ).json()["id"]
    comments = (
        "timestamp,datetime,comment-id,author-id,agrees,disagrees,moderated,comment-body\n"
        "1,x,0,0,0,0,1,我住在3号楼\n"
        "1,x,1,0,0,0,1,我支持加装电梯\n"
        "1,x,2,3,0,0,1,电梯费用应该按楼层分摊\n"
    )
    votes = "timestamp,datetime,comment-id,voter-id,vote\n" + "".join(
        f"{i},x,{c},{p},{1 if (p + c) % 2 else -1}\n"
        for i, (p, c) in enumerate((p, c) for p in range(6) for c in range(3))
    )
    base = f"/c/{world.a}/consultation/topics/{tid}"
    page = client.get(base)
    assert 'name="auto_meta" checked' in page.text and 'name="meta"' in page.text
    r = client.post(
        f"{base}/polis",
        data={"csrf_token": staff, "auto_meta": "on", "meta": ""},
        files={"comments": ("comments.csv", comments), "votes": ("votes.csv", votes)},
        follow_redirects=False,
    )
    assert r.status_code == 303
    page = client.get(base)
    # the flash, in the user's language
    assert any(t in page.text for t in ("1 statement describes the participant", "1 条观点描述"))
    left_out = page.text.split('id="left-out"', 1)[1].split("</details>", 1)[0]
    assert "我住在3号楼" in left_out and "我支持加装电梯" not in left_out
    sid = int(left_out.split("/statements/", 1)[1].split("/", 1)[0])
    r = client.post(
        f"{base}/statements/{sid}/moderate",
        data={"csrf_token": staff, "moderated": "1"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    page = client.get(base)
    assert 'id="left-out"' not in page.text  # restored: it counts again
    # staff can mark a statement as meta by hand; the API can turn detection off
    client.post(f"{base}/statements/{sid}/moderate", data={"csrf_token": staff, "moderated": "-2"})
    assert "我住在3号楼" in client.get(base).text.split('id="left-out"', 1)[1]
    r = client.post(
        f"{_api(world)}/topics/{tid}/polis-import",
        files={"comments": ("comments.csv", comments), "votes": ("votes.csv", votes)},
        data={"auto_meta": "false"},
        headers={"x-csrf-token": staff},
    )
    assert r.status_code == 200 and r.json()["meta"] == 0
    r = client.post(
        f"{_api(world)}/topics/{tid}/polis-import",
        files={"comments": ("comments.csv", comments), "votes": ("votes.csv", votes)},
        data={"meta": "2"},
        headers={"x-csrf-token": staff},
    )
    assert [(m["polis_id"], m["source"]) for m in r.json()["meta_statements"]] == [
        (0, "detected"),
        (2, "declared"),
    ]
