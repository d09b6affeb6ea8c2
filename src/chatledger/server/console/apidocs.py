"""The API's documentation pages, offline: ``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) load
their scripts, styles and icon from this package (nothing from another host), and every request
body of the OpenAPI document carries a realistic example."""

from __future__ import annotations

from typing import Any, Final

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from starlette.requests import Request
from starlette.responses import HTMLResponse

__all__ = ["EXAMPLES", "install_docs"]

_VENDOR: Final = "/console/static/vendor"
_ICON: Final = "/console/static/favicon.svg"

#: The docs pages load nothing from another host (ReDoc's side menu would fetch its logo from
#: a CDN; the policy stops it and ReDoc hides the image). Swagger UI's page starts with an
#: inline script, hence 'unsafe-inline' on these two pages only.
DOCS_CSP: Final = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)

_ALICE: Final = "0193b5d2-6c1e-7a4e-9a1f-3c2d4b5e6f70"
_CHUNK: Final = "0193b5d2-7f00-7b21-8c3d-5e6f708192a3"

#: Per request-body schema: named examples (``summary`` and ``value``), first one the default.
EXAMPLES: Final[dict[str, dict[str, dict[str, Any]]]] = {
    "UserCreate": {
        "user": {
            "summary": "A user of your app",
            "value": {
                "external_id": "auth0|64f1c2a9e8b7d6c5",
                "email": "maya.lopez@example.com",
                "display_name": "Maya Lopez",
                "metadata": {"plan": "team", "locale": "es-MX"},
            },
        }
    },
    "UserUpdate": {
        "rename": {
            "summary": "Change the display name",
            "value": {"display_name": "Maya Lopez Ortega"},
        }
    },
    "ConversationCreate": {
        "conversation": {
            "summary": "A new chat",
            "value": {
                "title": "Refund for a double charge",
                "intent": "billing",
                "metadata": {"channel": "web", "app_version": "3.14.0"},
            },
        }
    },
    "ConversationUpdate": {
        "title": {"summary": "Rename the chat", "value": {"title": "Refund issued (order 4417)"}}
    },
    "EditIn": {
        "edit": {
            "summary": "A new version of the user's question",
            "value": {"content": "I was charged twice for order 4417. Please refund both."},
        }
    },
    "RegenerateIn": {
        "regenerate": {
            "summary": "Another answer from the model",
            "value": {
                "content": "I've refunded the duplicate $24.90 charge for order 4417.",
                "model": "gpt-4o",
            },
        }
    },
    "SwitchIn": {
        "switch": {
            "summary": "Show the branch of this version",
            "value": {"message_id": "0193b5d2-8a10-7c42-9d4e-6f708192a3b4"},
        }
    },
    "ForkIn": {
        "fork": {
            "summary": "Continue from this answer in a new chat",
            "value": {
                "message_id": "0193b5d2-8a10-7c42-9d4e-6f708192a3b4",
                "title": "Refund, second try",
            },
        }
    },
    "MessageCreate": {
        "user": {
            "summary": "The user's message",
            "value": {
                "role": "user",
                "content": "I was charged twice for order 4417 on March 3rd. Can you refund one?",
                "request_id": "req_01HQ3V8K2Z9W",
            },
        },
        "assistant": {
            "summary": "The model's reply with its usage",
            "value": {
                "role": "assistant",
                "content": (
                    "I'm sorry about that. I can see two charges of $24.90 for order 4417. "
                    "I've refunded the duplicate; it will reach your card in 3-5 business days."
                ),
                "model": "gpt-4o-mini",
                "input_tokens": 412,
                "output_tokens": 58,
                "cost": "0.000096",
                "latency_ms": 1240,
                "request_id": "req_01HQ3V8M7D4X",
            },
        },
        "charged": {
            "summary": "A reply paid with the user's tokens (charge)",
            "value": {
                "role": "assistant",
                "content": "Here is the summary of the contract you uploaded: ...",
                "model": "claude-3-5-sonnet",
                "input_tokens": 9210,
                "output_tokens": 640,
                "cost": "0.037230",
                "charge": 10,
                "charge_reason": "contract summary",
            },
        },
    },
    "RatingIn": {
        "thumbs_down": {
            "summary": "A thumbs-down with a reason",
            "value": {
                "thumb": "down",
                "categories": ["inaccurate"],
                "comment": "The refund window is 30 days, not 14.",
            },
        },
        "score": {
            "summary": "A score from 1 to 5",
            "value": {"score": 4, "scale": [1, 5]},
        },
    },
    "CitationCreate": {
        "url": {
            "summary": "A web page the answer used",
            "value": {
                "url": "https://help.example.com/billing/refunds",
                "title": "Refunds and duplicate charges",
                "snippet": "Duplicate charges are refunded within 3-5 business days.",
                "score": 0.87,
                "rank": 1,
            },
        },
        "chunk": {
            "summary": "A knowledge chunk",
            "value": {"chunk_id": _CHUNK, "start_char": 120, "end_char": 310, "rank": 2},
        },
    },
    "TokenCredit": {
        "top_up": {
            "summary": "A purchased top-up",
            "value": {"user_id": _ALICE, "amount": 500, "reason": "purchase: starter pack"},
        }
    },
    "TokenDebit": {
        "debit": {
            "summary": "A manual correction",
            "value": {"user_id": _ALICE, "amount": 20, "reason": "correction: ticket 8812"},
        }
    },
    "SurveySubmit": {
        "answers": {
            "summary": "Onboarding survey answers",
            "value": {"answers": {"role": "support lead", "team_size": 12, "uses_api": True}},
        }
    },
    "VisitIn": {
        "agent": {
            "summary": "An AI agent's visit",
            "value": {
                "name": "ResearchBot",
                "agent_type": "crawler",
                "purpose": "indexing the pricing page",
                "answers": {"contact": "bot-owner@example.org"},
            },
        }
    },
    "VisitorAnswers": {
        "answers": {
            "summary": "Answers to set",
            "value": {"answers": {"referrer": "newsletter"}, "replace": False},
        }
    },
    "ProductFeedbackCreate": {
        "form": {
            "summary": "A feedback form",
            "value": {
                "agent_name": "Maya Lopez",
                "agent_type": "human",
                "issues": "Exporting a chat to PDF loses the code blocks.",
                "feature_requests": "Search across all my conversations.",
                "usability_rating": 8,
            },
        }
    },
    "StreamBegin": {
        "reply": {
            "summary": "Begin streaming the assistant's reply",
            "value": {"model": "gpt-4o-mini", "lease_seconds": 60},
        },
        "charged": {
            "summary": "Begin a reply and hold an estimate of its tokens (a charge)",
            "value": {"model": "gpt-4o-mini", "charge": 800, "charge_reason": "message"},
        },
    },
    "StreamDelta": {
        "chunk": {
            "summary": "The first flushed batch of tokens",
            "value": {"index": 0, "text": "You were charged twice because the first "},
        }
    },
    "StreamFinish": {
        "completed": {
            "summary": "The rest of the text and the final usage",
            "value": {
                "text": "payment timed out and was retried. The refund is on its way.",
                "input_tokens": 412,
                "output_tokens": 38,
                "cost": "0.000285",
                "latency_ms": 1840,
            },
        },
        "tool_calls": {
            "summary": "A reply that asks for a tool",
            "value": {
                "text": "Let me look that payment up.",
                "tool_calls": [
                    {
                        "id": "call_7Qx2",
                        "name": "find_payment",
                        "arguments": {"order": "A-10293"},
                    }
                ],
            },
        },
    },
    "StreamAbort": {
        "stopped": {
            "summary": "The user pressed stop",
            "value": {"reason": "stopped by the user"},
        }
    },
    "ToolResultIn": {
        "result": {
            "summary": "What the tool returned",
            "value": {
                "content": '{"order": "A-10293", "status": "refunded", "amount": "19.99"}',
                "latency_ms": 230,
            },
        }
    },
    "KnowledgeUpsert": {
        "chunk": {
            "summary": "A help-center paragraph",
            "value": {
                "source": "help-center",
                "external_id": "billing/refunds#duplicate",
                "title": "Duplicate charges",
                "content": "If you were charged twice, we refund the duplicate in 3-5 days.",
                "metadata": {"lang": "en"},
            },
        }
    },
    "KnowledgeAdd": {
        "note": {
            "summary": "A note without a key of the app's",
            "value": {
                "source": "notes",
                "title": "Office hours",
                "content": "Support answers from 9:00 to 17:00 CET on weekdays.",
                "metadata": {"lang": "en"},
            },
        }
    },
    "KnowledgeBulk": {
        "chunks": {
            "summary": "Two help-center paragraphs",
            "value": {
                "chunks": [
                    {
                        "source": "help-center",
                        "external_id": "billing/refunds#duplicate",
                        "content": "If you were charged twice, we refund the duplicate.",
                    },
                    {
                        "source": "help-center",
                        "external_id": "billing/refunds#window",
                        "content": "Refunds can be requested within 30 days of purchase.",
                    },
                ]
            },
        }
    },
    "ApiKeyCreate": {
        "key": {
            "summary": "A key for a deployment",
            "value": {"name": "support-bot production", "expires_at": "2027-06-30T00:00:00Z"},
        }
    },
    "AuditRecord": {
        "event": {
            "summary": "An application event",
            "value": {
                "event_type": "conversation.escalated",
                "category": "general",
                "severity": "info",
                "description": "Handed over to a human agent",
                "metadata": {"queue": "billing"},
            },
        }
    },
}


def _with_examples(document: dict[str, Any]) -> dict[str, Any]:
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            content = operation.get("requestBody", {}).get("content", {})
            for media in content.values():
                name = media.get("schema", {}).get("$ref", "").rsplit("/", 1)[-1]
                if name in EXAMPLES:
                    media["examples"] = EXAMPLES[name]
    return document


def _guarded(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = DOCS_CSP
    page.headers["X-Content-Type-Options"] = "nosniff"
    return page


def install_docs(app: FastAPI) -> None:
    """Serve ``/docs`` and ``/redoc`` from shipped assets and add the request examples to
    the app's OpenAPI document (the app must be made with ``docs_url=None, redoc_url=None``)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _with_examples(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    url = app.openapi_url or "/openapi.json"

    async def swagger(request: Request) -> HTMLResponse:
        return _guarded(
            get_swagger_ui_html(
                openapi_url=url,
                title=f"{app.title} - Swagger UI",
                swagger_js_url=f"{_VENDOR}/swagger-ui/swagger-ui-bundle.js",
                swagger_css_url=f"{_VENDOR}/swagger-ui/swagger-ui.css",
                swagger_favicon_url=_ICON,
                # Swagger UI's validator badge would send the document to another host.
                swagger_ui_parameters={"validatorUrl": None},
            )
        )

    async def redoc(request: Request) -> HTMLResponse:
        return _guarded(
            get_redoc_html(
                openapi_url=url,
                title=f"{app.title} - ReDoc",
                redoc_js_url=f"{_VENDOR}/redoc/redoc.standalone.js",
                redoc_favicon_url=_ICON,
                with_google_fonts=False,
            )
        )

    app.add_route("/docs", swagger, include_in_schema=False)
    app.add_route("/redoc", redoc, include_in_schema=False)
