"""The intake API described as OpenAPI 3.1, written by hand as data: what `GET
/api/v1/openapi.json` serves. tests/test_intake_openapi.py checks it is valid OpenAPI and names
every route and status bot/intake/http.py answers."""

from __future__ import annotations

from typing import Any

from bot.intake.body import MAX_REQUESTED_BY, SLACK_USER_FIELD
from bot.policy.reasons import MAX_REASON
from bot.sfox.userid import MAX_LENGTH as MAX_USER_ID
from bot.store.intake import CALLBACK_STATES
from bot.webhooks.signing import MAX_SKEW_SECONDS, REQUEST_SCHEME, SIGNATURE_HEADER, TIMESTAMP_HEADER


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


_SIGNED = [{"signature": [], "timestamp": []}]
_UNSIGNED = _error(
    f"{SIGNATURE_HEADER} or {TIMESTAMP_HEADER} missing, wrong, v1, more than {MAX_SKEW_SECONDS // 60} "
    "minutes old, or already used (a signature is accepted once)"
)
_OFF = _error("Not found, or the intake API is off (SFOX_INTAKE_SECRET not set)")
_METHOD = _error("Another method on this path")
_TOO_BIG = _error("The body is larger than 64 KiB")

_DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "sfox-deactivate-bot intake API",
        "version": "1",
        "description": (
            "Back-office systems open sFOX deactivation requests; approvers approve them on the card "
            "in Slack (two-person rule, the policy's counts). Every call but this document is signed: "
            f"{SIGNATURE_HEADER}: v2=<hex HMAC-SHA256 of '{REQUEST_SCHEME}' with SFOX_INTAKE_SECRET>, "
            "the method upper-case, the path as sent (with ?query if any), the Idempotency-Key (empty "
            f"for a GET), the raw body; {TIMESTAMP_HEADER}: unix seconds, within "
            f"{MAX_SKEW_SECONDS // 60} minutes. A signature is accepted once (sign a retry again, with "
            "a new timestamp); v1 signatures are refused. Callbacks are signed v1: "
            f"{SIGNATURE_HEADER}: v1=<hex HMAC-SHA256 of 'v1:{{timestamp}}:{{raw body}}'>."
        ),
    },
    "paths": {
        "/api/v1/requests": {
            "post": {
                "operationId": "openRequest",
                "summary": "Open a deactivation request (its card goes to SFOX_DEFAULT_CHANNEL)",
                "security": _SIGNED,
                "parameters": [
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": True,
                        "description": "The same key with the same body answers the first answer and opens "
                        "nothing new; with another body: 409.",
                        "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NewRequest"}}},
                },
                "responses": {
                    "202": {
                        "description": "Recorded and carried out: the request opened (or blocked) and its card",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Accepted"}}
                        },
                    },
                    "400": _error(
                        "A bad body or Idempotency-Key (or slack_user_id missing where the policy "
                        "requires it); the error names the field"
                    ),
                    "401": _UNSIGNED,
                    "404": _OFF,
                    "405": _METHOD,
                    "409": _error("This Idempotency-Key was used with another body"),
                    "413": _TOO_BIG,
                    "422": _error(
                        "No request was opened (unknown sFOX user, one already open, sFOX unreachable)"
                    ),
                    "503": _error(
                        "Not recorded (the database is unavailable); sign it again and send it again "
                        "with the same key"
                    ),
                },
                "callbacks": {
                    "outcome": {
                        "{$request.body#/callback_url}": {
                            "post": {
                                "summary": "The final outcome, POSTed once, signed v1 (timestamp and body), "
                                "retried (1 s doubling to 60 s) until a 2xx, at most "
                                "SFOX_INTAKE_CALLBACK_ATTEMPTS times (then given up: see the GET's callback)",
                                "requestBody": {
                                    "content": {
                                        "application/json": {
                                            "schema": {"$ref": "#/components/schemas/Outcome"}
                                        }
                                    }
                                },
                                "responses": {"200": {"description": "Received (any 2xx)"}},
                            }
                        }
                    }
                },
            }
        },
        "/api/v1/requests/{id}": {
            "get": {
                "operationId": "getRequest",
                "summary": "A request asked through this API, as `sfox-bot history --format json` shows it",
                "security": _SIGNED,
                "parameters": [
                    {
                        "name": "id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer", "minimum": 1},
                    }
                ],
                "responses": {
                    "200": {
                        "description": "Its history record",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Record"}}},
                    },
                    "401": _UNSIGNED,
                    "404": _error("No such request asked through this API, or the API is off"),
                    "405": _METHOD,
                    "413": _TOO_BIG,
                    "503": _error(
                        "The signature could not be recorded (database unavailable); sign it again"
                    ),
                },
            }
        },
        "/api/v1/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document (unsigned)",
                "security": [],
                "responses": {
                    "200": {
                        "description": "OpenAPI 3.1",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    "404": _OFF,
                    "405": _METHOD,
                },
            }
        },
    },
    "components": {
        "securitySchemes": {
            "signature": {"type": "apiKey", "in": "header", "name": SIGNATURE_HEADER},
            "timestamp": {"type": "apiKey", "in": "header", "name": TIMESTAMP_HEADER},
        },
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {"type": "string", "description": "What is wrong; a field's name first"}
                },
            },
            "NewRequest": {
                "type": "object",
                "additionalProperties": False,
                "required": ["sfox_user_id", "requested_by"],
                "properties": {
                    "sfox_user_id": {"type": "string", "minLength": 1, "maxLength": MAX_USER_ID},
                    "reason": {"type": "string", "maxLength": MAX_REASON},
                    "requested_by": {
                        "type": "string",
                        "maxLength": MAX_REQUESTED_BY,
                        "description": "The system or person asking, shown 'via …' on the card",
                    },
                    SLACK_USER_FIELD: {
                        "type": "string",
                        "maxLength": 21,
                        "description": "A Slack user id (U… or W…, e.g. U012ABCDEF): the Slack user the request acts for (e.g. the back-office user who "
                        "asked): its requester, who can never approve it; required when the policy says "
                        "intake: {require_slack_user: true} (SFOX_INTAKE_REQUIRE_SLACK_USER)",
                    },
                    "callback_url": {
                        "type": "string",
                        "format": "uri",
                        "description": "https to a public address (never private, loopback, "
                        "link-local, multicast or mapped; checked again for every address the name "
                        "resolves to when it is sent), or a host SFOX_INTAKE_CALLBACK_HOSTS lists "
                        "(plain http only to a listed loopback host); no credentials",
                    },
                },
            },
            "Accepted": {
                "type": "object",
                "required": ["request_id", "status", "url"],
                "properties": {
                    "request_id": {"type": ["integer", "null"]},
                    "status": {"type": "string", "examples": ["pending", "blocked", "accepted"]},
                    "url": {"type": ["string", "null"], "description": "The card's permalink"},
                },
            },
            "Record": {
                "type": "object",
                "description": "The fields of `sfox-bot history --format json`; the GET adds `callback` "
                "for a request asked with a callback_url",
                "properties": {
                    "callback": {
                        "type": "object",
                        "required": ["state", "attempts", "error"],
                        "properties": {
                            "state": {"type": "string", "enum": list(CALLBACK_STATES)},
                            "attempts": {"type": "integer", "minimum": 0},
                            "error": {
                                "type": ["string", "null"],
                                "description": "The last attempt's status or error class (never the URL)",
                            },
                        },
                    }
                },
            },
            "Outcome": {
                "type": "object",
                "required": ["request_id", "status", "record"],
                "properties": {
                    "request_id": {"type": "integer"},
                    "status": {
                        "type": "string",
                        "enum": ["succeeded", "failed", "denied", "expired", "blocked", "cancelled"],
                    },
                    "record": {"$ref": "#/components/schemas/Record"},
                },
            },
        },
    },
}


def document() -> dict[str, Any]:
    return _DOCUMENT
