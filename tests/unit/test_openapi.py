"""The OpenAPI document tells the truth about the routes the server has."""

from __future__ import annotations

import json
import re

import schemathesis

from service.api.openapi import OPERATIONS, document
from service.api.views import ROUTES, UNDOCUMENTED
from service.app import create_app
from service.config import Settings


def test_document_and_views_describe_the_same_routes() -> None:
    assert {op.path for op in OPERATIONS} == set(ROUTES)


def test_the_server_has_exactly_the_documented_routes(tmp_path: object) -> None:
    app = create_app(Settings(data_dir=f"{tmp_path}"))
    served = {r.canonical for r in app.web.web_app.router.resources()}
    assert served == {op.path for op in OPERATIONS} | set(UNDOCUMENTED)


def test_document_is_valid_and_complete() -> None:
    doc = document(api_page_size_max=500, token_required=True)
    json.dumps(doc)  # serialisable as served
    schema = schemathesis.openapi.from_dict(doc)  # validates the OpenAPI structure
    assert len(list(schema.get_all_operations())) == len(OPERATIONS)
    components = doc["components"]["schemas"]
    methods = []
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            methods.append((path, method))
            names = {p["name"] for p in operation["parameters"] if p["in"] == "path"}
            assert names == set(re.findall(r"{(\w+)}", path)), path
            for response in operation["responses"].values():
                for media, content in response["content"].items():
                    if media == "text/csv":  # a list route's rows, as text
                        assert content["schema"]["type"] == "string", path
                        continue
                    ref = content["schema"]["$ref"].rsplit("/", 1)[-1]
                    assert ref in components, (path, ref)
            protected = path.startswith("/v1/")
            assert ("401" in operation["responses"]) == protected, path
    assert sorted(methods) == sorted((op.path, op.method) for op in OPERATIONS)
    post = doc["paths"]["/v1/assets/{asset_id}/suggestions"]["post"]
    body = post["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert body.rsplit("/", 1)[-1] in components
    assert {"201", "400", "403", "404"} <= set(post["responses"])
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_without_a_token_no_route_asks_for_one() -> None:
    doc = document(api_page_size_max=500, token_required=False)
    assert "securitySchemes" not in doc["components"]
    assert all(
        "401" not in operation["responses"]
        for item in doc["paths"].values()
        for operation in item.values()
    )
    # Writing is refused without a token: documented as 403.
    assert "403" in doc["paths"]["/v1/assets/{asset_id}/suggestions"]["post"]["responses"]


def test_documented_bounds_are_the_bounds_the_views_enforce() -> None:
    from service.api.openapi import MAX_MIN_IMPRESSIONS

    doc = document(api_page_size_max=500, token_required=False)
    top = {
        p["name"]: p["schema"]
        for p in doc["paths"]["/v1/libraries/{library_id}/top"]["get"]["parameters"]
    }
    assert top["min_impressions"] == {
        "type": "integer",
        "minimum": 0,
        "maximum": MAX_MIN_IMPRESSIONS,
    }
    assert top["limit"] == {"type": "integer", "minimum": 1, "maximum": 100}
    assets = {
        p["name"]: p["schema"]
        for p in doc["paths"]["/v1/libraries/{library_id}/assets"]["get"]["parameters"]
    }
    assert assets["limit"]["maximum"] == 500
