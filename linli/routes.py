"""Every router of every domain, mounted on the app in one place."""

from __future__ import annotations

from fastapi import FastAPI


def include_all(app: FastAPI) -> None:
    from linli.access import api as access_api
    from linli.access import events as _access_events  # noqa: F401  (handlers)
    from linli.access import pages as access_pages
    from linli.admin import api as admin_api
    from linli.admin import pages as admin_pages
    from linli.consultation import api as consultation_api
    from linli.consultation import events as _consultation_events  # noqa: F401  (handlers)
    from linli.consultation import pages as consultation_pages
    from linli.core import stream
    from linli.iot import api as iot_api
    from linli.iot import pages as iot_pages
    from linli.people import api as people_api
    from linli.people import pages as people_pages
    from linli.safety import api as safety_api
    from linli.safety import events as _safety_events  # noqa: F401  (handlers, alarm kinds)
    from linli.safety import pages as safety_pages
    from linli.vehicles import api as vehicles_api
    from linli.vehicles import events as _vehicles_events  # noqa: F401  (alarm kinds)
    from linli.vehicles import pages as vehicles_pages
    from linli.waste import api as waste_api
    from linli.waste import events as _waste_events  # noqa: F401  (alarm kinds)
    from linli.waste import pages as waste_pages
    from linli.workorders import api as workorders_api
    from linli.workorders import pages as workorders_pages

    for router in (
        admin_api.router,
        people_api.router,
        access_api.router,
        consultation_api.router,
        iot_api.router,
        iot_api.device_router,
        workorders_api.router,
        vehicles_api.router,
        waste_api.router,
        waste_api.public_router,
        safety_api.router,
        stream.router,
        admin_pages.router,
        people_pages.router,
        access_pages.router,
        consultation_pages.router,
        iot_pages.router,
        workorders_pages.router,
        safety_pages.router,
        vehicles_pages.router,
        waste_pages.router,
    ):
        app.include_router(router)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}
