from conftest import login


def test_each_role_logs_in_and_sees_overview(client, world):  # type: ignore[no-untyped-def]
    for name in ("admin", "staff", "grid", "property", "guard", "pro", "resident"):
        client.cookies.clear()
        login(client, name)
        r = client.get(f"/c/{world.a}")
        assert r.status_code == 200, name
