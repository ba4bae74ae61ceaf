"""The gateway's API, one router per area, each a thin layer over `cortask.app.CortaskApp`."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from cortask.app.actions import CortaskApp


def _app(request: Request) -> CortaskApp:
    app: CortaskApp = request.app.state.cortask
    return app


App = Annotated[CortaskApp, Depends(_app)]
