"""Every router of every domain, mounted on the app in one place."""

from __future__ import annotations

from fastapi import FastAPI


def include_all(app: FastAPI) -> None:
    from linli.admin import api as admin_api
    from linli.admin import pages as admin_pages
    from linli.core import stream
    from linli.people import api as people_api
    from linli.people import pages as people_pages

    for router in (
        admin_api.router,
        people_api.router,
        stream.router,
        admin_pages.router,
        people_pages.router,
    ):
        app.include_router(router)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}
