"""The Schema Registry REST API, as Confluent's clients call it, served by every hub worker.

Paths, bodies, content type and error JSON (``{"error_code": 40401, "message": ...}``)
follow the Confluent Schema Registry, so ``confluent_kafka.schema_registry`` and other
standard tooling can register schemas and decode any hub topic. The store is
``hub.registry.SchemaRegistry`` (the ``_schemas`` topic); its Kafka I/O is blocking, so
each handler runs it in a thread. Avro only; schema references are not supported.

Who may call it: reads (including lookups and compatibility checks, which are POSTs) need
a partner's or an admin's token, or a worker's signed call (``hub.routing``); registering,
``PUT /config`` and deletes are for admins. Confluent clients authenticate with HTTP Basic
(``basic.auth.user.info`` = ``<user id>:<token>``), other clients with a bearer token. The
caller is checked before the body is read; bodies are bounded (``PLACEHUB_REGISTRY_MAX_
BODY_BYTES``, 413) and parsed as UTF-8 JSON within depth and number limits (400), and so
is the schema inside them (42201), so no body can make it answer 500.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from enum import IntEnum
from typing import Any, TypeVar

from faust.web import Request, Response, View

from hub._http import (
    JsonLimits,
    RequestRefused,
    check_content_type,
    parse_json,
    parse_json_text,
    read_body,
)
from hub.app import Hub
from hub.compatibility import Compatibility
from hub.errors import HubError, InputError, RegistryError, SchemaNotFound
from hub.registry import SchemaRegistry, SubjectVersion, parse_version, validate_schema
from hub.routing import principal_of
from hub.users import Role

__all__ = ["CONTENT_TYPE", "install_registry_api"]

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
log = logging.getLogger(__name__)
T = TypeVar("T")

BODY_LIMITS = JsonLimits(max_depth=16, max_values=10_000)
# PartnerEvent, the largest contract, nests 10 deep and holds about 600 JSON values.
SCHEMA_LIMITS = JsonLimits(max_depth=64, max_values=100_000)


class Access(IntEnum):
    """What a caller may do with the registry, in increasing order."""

    NONE = 0
    READ = 1
    ADMIN = 2


def access_of(hub: Hub, request: Request) -> Access | None:
    """The caller's access (None: not authenticated): partners read, admins do anything,
    and a worker's signed call reads (or acts with the rights of the user it acts for)."""
    principal = principal_of(hub, request)
    if principal is None:
        return None
    if principal.user is None:
        return Access.READ  # a worker acting for itself
    if principal.user.role is Role.ADMIN:
        return Access.ADMIN
    return Access.READ if principal.user.role is Role.PARTNER else Access.NONE


def install_registry_api(hub: Hub) -> None:
    """Add ``/subjects``, ``/schemas``, ``/compatibility`` and ``/config`` to the hub's web."""
    registry = hub.registry
    limit = hub.settings.registry_max_body_bytes

    def run(function: Callable[..., T], *args: Any) -> Awaitable[T]:
        return asyncio.to_thread(function, *args)

    async def reply(
        view: View, request: Request, needs: Access, work: Callable[[], Awaitable[Any]]
    ) -> Response:
        """``work()`` if the caller has ``needs`` (checked before any body is read)."""
        has = access_of(hub, request)
        if has is None:
            message = "Unauthorized: a token is required (Bearer, or Basic with user id and token)"
            return _error(view, 401, 40101, message, {"WWW-Authenticate": 'Basic realm="placehub"'})
        if has < needs:
            what = "registering, config and deletes are" if needs is Access.ADMIN else "reads are"
            return _error(view, 403, 40301, f"Forbidden: {what} not open to your role")
        return await _reply(view, work())

    async def body_of(request: Request) -> dict[str, Any]:
        return await _body(request, limit)

    async def schema_of(request: Request) -> dict[str, Any]:
        return _schema_in(await body_of(request))

    class Subjects(View):
        """``GET /subjects``: subject names (``?deleted=true`` adds soft-deleted ones)."""

        async def get(self, request: Request) -> Response:
            deleted = _flag(request, "deleted")
            return await reply(
                self, request, Access.READ, lambda: run(registry.subject_names, deleted)
            )

    class Subject(View):
        """``POST /subjects/{s}``: is this schema registered here? ``DELETE``: soft delete."""

        async def post(self, request: Request, subject: str) -> Response:
            async def lookup() -> dict[str, Any]:
                schema = await schema_of(request)
                found = await run(registry.lookup, subject, schema, _flag(request, "deleted"))
                return _described(registry, found)

            return await reply(self, request, Access.READ, lookup)

        async def delete(self, request: Request, subject: str) -> Response:
            permanent = _flag(request, "permanent")
            return await reply(
                self,
                request,
                Access.ADMIN,
                lambda: run(registry.delete_subject, subject, permanent),
            )

    class Versions(View):
        """``GET /subjects/{s}/versions``: version numbers; ``POST``: register a schema."""

        async def get(self, request: Request, subject: str) -> Response:
            async def numbers() -> list[int]:
                found = await run(registry.versions, subject, _flag(request, "deleted"))
                return [version.version for version in found]

            return await reply(self, request, Access.READ, numbers)

        async def post(self, request: Request, subject: str) -> Response:
            async def register() -> dict[str, Any]:
                schema = await schema_of(request)
                version = await run(registry.register_version, subject, schema)
                return {"id": version.schema_id}

            return await reply(self, request, Access.ADMIN, register)

    class Version(View):
        """``GET /subjects/{s}/versions/{v}``: one version; ``DELETE``: soft delete it."""

        async def get(self, request: Request, subject: str, version: str) -> Response:
            async def describe() -> dict[str, Any]:
                ref = parse_version(version)
                found = await run(registry.version, subject, ref, _flag(request, "deleted"))
                return _described(registry, found)

            return await reply(self, request, Access.READ, describe)

        async def delete(self, request: Request, subject: str, version: str) -> Response:
            async def delete() -> int:
                ref = parse_version(version)
                return await run(registry.delete_version, subject, ref, _flag(request, "permanent"))

            return await reply(self, request, Access.ADMIN, delete)

    class VersionSchema(View):
        """``GET /subjects/{s}/versions/{v}/schema``: just the schema."""

        async def get(self, request: Request, subject: str, version: str) -> Response:
            async def schema() -> dict[str, Any]:
                found = await run(registry.version, subject, parse_version(version))
                return registry.by_id(found.schema_id).schema

            return await reply(self, request, Access.READ, schema)

    class SchemaById(View):
        """``GET /schemas/ids/{id}``: the schema with that id (what deserialisers ask)."""

        async def get(self, request: Request, schema_id: str) -> Response:
            async def schema() -> dict[str, Any]:
                return {"schema": (await run(registry.by_id, _schema_id(schema_id))).text}

            return await reply(self, request, Access.READ, schema)

    class SchemaVersions(View):
        """``GET /schemas/ids/{id}/versions``: the subject versions that are this schema."""

        async def get(self, request: Request, schema_id: str) -> Response:
            async def usages() -> list[dict[str, Any]]:
                found = await run(registry.usages, _schema_id(schema_id), _flag(request, "deleted"))
                return [{"subject": v.subject, "version": v.version} for v in found]

            return await reply(self, request, Access.READ, usages)

    class SchemaSubjects(View):
        """``GET /schemas/ids/{id}/subjects``: the subjects this schema is registered under."""

        async def get(self, request: Request, schema_id: str) -> Response:
            async def subjects() -> list[str]:
                found = await run(registry.usages, _schema_id(schema_id), _flag(request, "deleted"))
                return sorted({version.subject for version in found})

            return await reply(self, request, Access.READ, subjects)

    class SchemaTypes(View):
        """``GET /schemas/types``: the schema formats this registry accepts."""

        async def get(self, request: Request) -> Response:
            async def types() -> list[str]:
                return ["AVRO"]

            return await reply(self, request, Access.READ, types)

    class CompatibilityCheck(View):
        """``POST /compatibility/subjects/{s}/versions/{v}``: would this schema be accepted?"""

        async def post(self, request: Request, subject: str, version: str = "") -> Response:
            async def check() -> dict[str, Any]:
                ref = parse_version(version) if version else None
                schema = await schema_of(request)
                problems = await run(registry.check, subject, schema, ref)
                answer: dict[str, Any] = {"is_compatible": not problems}
                if _flag(request, "verbose"):
                    answer["messages"] = [str(problem) for problem in problems]
                return answer

            return await reply(self, request, Access.READ, check)

    class Config(View):
        """``GET/PUT/DELETE /config[/{s}]``: the global or a subject's compatibility mode."""

        async def get(self, request: Request, subject: str | None = None) -> Response:
            fallback = subject is None or _flag(request, "defaultToGlobal")
            return await reply(
                self,
                request,
                Access.READ,
                lambda: _level(
                    run(registry.compatibility, subject, fallback), "compatibilityLevel"
                ),
            )

        async def put(self, request: Request, subject: str | None = None) -> Response:
            async def put() -> dict[str, str]:
                body = await body_of(request)
                level = body.get("compatibility", body.get("compatibilityLevel"))
                try:
                    mode = Compatibility.parse(level)
                except InputError:
                    raise RegistryError(
                        42203,
                        "Invalid compatibility level. Valid values are none, backward, forward, "
                        "full, backward_transitive, forward_transitive, and full_transitive",
                    ) from None
                return await _level(run(registry.set_compatibility, subject, mode), "compatibility")

            return await reply(self, request, Access.ADMIN, put)

        async def delete(self, request: Request, subject: str | None = None) -> Response:
            return await reply(
                self,
                request,
                Access.ADMIN,
                lambda: _level(run(registry.delete_compatibility, subject), "compatibilityLevel"),
            )

    pages: dict[str, type[View]] = {
        "/subjects": Subjects,
        "/subjects/{subject}": Subject,
        "/subjects/{subject}/versions": Versions,
        "/subjects/{subject}/versions/{version}": Version,
        "/subjects/{subject}/versions/{version}/schema": VersionSchema,
        "/schemas/types": SchemaTypes,
        "/schemas/ids/{schema_id}": SchemaById,
        "/schemas/ids/{schema_id}/versions": SchemaVersions,
        "/schemas/ids/{schema_id}/subjects": SchemaSubjects,
        "/compatibility/subjects/{subject}/versions": CompatibilityCheck,
        "/compatibility/subjects/{subject}/versions/{version}": CompatibilityCheck,
        "/config": Config,
        "/config/{subject}": Config,
    }
    for path, page in pages.items():
        # A view class may serve two paths; Faust keys views by class name, so copy it.
        hub.app.page(path, name=f"registry:{path}")(type(page.__name__, (page,), {}))


async def _reply(view: View, work: Awaitable[Any]) -> Response:
    """Await ``work`` and answer with its result, or with Confluent's error JSON."""
    try:
        return _json(view, await work)
    except RequestRefused as exc:
        return _error(view, exc.status, exc.status, exc.title)
    except RegistryError as exc:
        return _error(view, exc.http_status, exc.error_code, str(exc))
    except SchemaNotFound as exc:
        return _error(view, 404, 40403, str(exc))
    except HubError as exc:
        # Kafka unreachable, or the store is inconsistent: Confluent's backend-store error.
        return _error(view, 500, 50001, f"Error in the backend data store: {exc}")
    except Exception:
        # A bug here must still answer in the API's error shape (clients parse it).
        log.exception("registry request failed")
        return _error(view, 500, 500, "Internal Server Error")


def _json(view: View, value: Any, status: int = 200) -> Response:
    return view.json(value, status=status, content_type=CONTENT_TYPE)


def _error(
    view: View, status: int, error_code: int, message: str, headers: dict[str, str] | None = None
) -> Response:
    body = {"error_code": error_code, "message": message}
    return view.json(body, status=status, content_type=CONTENT_TYPE, headers=headers)


async def _level(mode: Awaitable[Compatibility], key: str) -> dict[str, str]:
    return {key: (await mode).value}


def _described(registry: SchemaRegistry, version: SubjectVersion) -> dict[str, Any]:
    return {
        "subject": version.subject,
        "version": version.version,
        "id": version.schema_id,
        "schema": registry.by_id(version.schema_id).text,
    }


def _flag(request: Request, name: str) -> bool:
    return str(request.query.get(name, "false")).lower() == "true"


def _schema_id(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise RegistryError(40403, f"Schema {text} not found") from None


async def _body(request: Request, limit_bytes: int) -> dict[str, Any]:
    """The request's JSON object, read within ``limit_bytes`` (RequestRefused otherwise)."""
    check_content_type(request.headers.get("Content-Type"), require_json=False)
    body = parse_json(await read_body(request, limit_bytes) or b"{}", BODY_LIMITS)
    if not isinstance(body, dict):
        raise RegistryError(422, "Request body must be a JSON object")
    return body


def _schema_in(body: dict[str, Any]) -> dict[str, Any]:
    """The Avro schema in a register/lookup/compatibility body; 42201 if it is not one."""
    schema_type = body.get("schemaType") or "AVRO"
    if schema_type != "AVRO":
        raise RegistryError(42201, "Invalid schema: only schemaType AVRO is supported")
    if body.get("references"):
        raise RegistryError(42201, "Invalid schema: schema references are not supported")
    schema = body.get("schema")
    if isinstance(schema, str):
        try:
            parse_json_text(schema, SCHEMA_LIMITS, what="the schema")
        except RequestRefused as exc:
            raise RegistryError(42201, f"Invalid schema: {exc.title}") from None
    return validate_schema(schema)
