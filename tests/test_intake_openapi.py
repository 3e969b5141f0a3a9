"""The intake API's OpenAPI document (bot/intake/openapi.py): valid OpenAPI, and naming every
route and status the API answers (bot/intake/http.py)."""

from __future__ import annotations

from openapi_spec_validator import validate

from bot.intake import http
from bot.intake.openapi import document


def test_the_document_is_valid_openapi_3():
    spec = document()
    assert spec["openapi"].startswith("3.")
    validate(spec)


def test_every_route_and_status_the_api_serves_is_described():
    paths = document()["paths"]
    assert set(paths) == {http.REQUESTS, http.REQUESTS + "/{id}", http.OPENAPI}
    described: set[int] = set()
    for operations in paths.values():
        for operation in operations.values():
            described |= {int(code) for code in operation["responses"]}
    assert described == set(http.STATUSES)
    post = paths[http.REQUESTS]["post"]["responses"]
    assert {"202", "400", "401", "404", "409", "422"} <= set(post)
    assert {"200", "401", "404"} <= set(paths[http.REQUESTS + "/{id}"]["get"]["responses"])


def test_the_served_document_is_the_module_s(make_bot):
    import httpx

    from tests.test_intake import INTAKE

    bot = make_bot(**INTAKE)
    response = httpx.get(bot.url + http.OPENAPI, timeout=10)
    assert response.status_code == 200 and response.json() == document()


def test_the_document_says_the_v2_signature_and_every_body_field():
    from bot.intake.body import FIELDS
    from bot.webhooks.signing import REQUEST_SCHEME

    spec = document()
    assert (
        REQUEST_SCHEME in spec["info"]["description"]
        and "v1 signatures are refused" in spec["info"]["description"]
    )
    new = spec["components"]["schemas"]["NewRequest"]
    assert set(new["properties"]) == set(FIELDS)
    assert "never approve" in new["properties"]["slack_user_id"]["description"]
    assert "already used" in spec["paths"][http.REQUESTS]["post"]["responses"]["401"]["description"]
