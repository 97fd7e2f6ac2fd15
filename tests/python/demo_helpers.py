"""What the tests of the demo app (`ringsession.demo`) share: its password, and logging in through
its form with the XSRF token, like a browser.

The `demo_store` fixture (memory, sharded Redis) is in conftest.py.
"""

from __future__ import annotations

import re
import urllib.parse

import tornado.httpclient
from conftest import Client

PASSWORD = "correct horse"


def xsrf_field(html: bytes) -> str:
    """The value of the ``_xsrf`` field of the form in `html`."""
    match = re.search(rb'name="_xsrf" value="([^"]+)"', html)
    assert match, "the form has no _xsrf field"
    return match.group(1).decode()


async def login(
    client: Client, name: str = "demo", pwd: str = PASSWORD
) -> tornado.httpclient.HTTPResponse:
    """GET /login (the form, and the XSRF cookie in `client`), then POST it with its token;
    returns the POST's response."""
    form = await client.fetch("/login")
    assert form.code == 200
    body = urllib.parse.urlencode({"name": name, "pwd": pwd, "_xsrf": xsrf_field(form.body)})
    return await client.fetch("/login", method="POST", body=body)
