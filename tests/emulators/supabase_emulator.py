"""A small real HTTP emulator of Supabase Storage (objects, buckets, signed URLs, vector buckets).

It answers the requests the real `supabase` / `storage3` 2.34 client sends, with the behaviour of
supabase/storage (read from its source):
- every route sits under /storage/v1 and needs `Authorization: Bearer <service key>`;
- errors of the object/bucket API are rendered as {statusCode: "<code>", code, error, message} with
  HTTP status 400 (500 for internal errors) — the real status lives in the body, like the real service;
  vector routes use the real HTTP status;
- upload: POST is create-only unless `x-upsert: true` (409 Duplicate otherwise), PUT replaces;
  there are no conditional (If-Match) uploads, like the real REST API;
- list (v1): one folder level per call, `prefix` taken as a folder, folders first then files,
  `limit`/`offset` over that union, `search` as a case-insensitive LIKE on the next path segment;
- remove: at most 1000 prefixes per request, missing keys are skipped, the removed objects returned;
- delete bucket with objects: 409 ResourceNotEmpty; signed URLs are HMAC tokens with expiry.
State is in memory and guarded by one lock.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from tests.emulators.supabase_vectors import ApiError, VectorState

PREFIX = "/storage/v1"
MAX_DELETE_PREFIXES = 1000
KEY_RE = re.compile(r"^(\w|/|!|-|\.|\*|'|\(|\)| |&|\$|@|=|;|:|\+|,|\?)*$", re.ASCII)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def _http_date(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")


@dataclass
class Obj:
    data: bytes
    content_type: str
    cache_control: str
    user_metadata: dict[str, Any] | None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    version: str = field(default_factory=lambda: str(uuid.uuid4()))
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)

    @property
    def etag(self) -> str:
        return '"' + hashlib.md5(self.data).hexdigest() + '"'

    def metadata(self) -> dict[str, Any]:
        return {
            "eTag": self.etag,
            "size": len(self.data),
            "mimetype": self.content_type,
            "cacheControl": f"max-age={self.cache_control}",
            "lastModified": _iso(self.updated),
            "contentLength": len(self.data),
            "httpStatusCode": 200,
        }


@dataclass
class BucketRec:
    id: str
    public: bool = False
    file_size_limit: int | None = None
    allowed_mime_types: list[str] | None = None
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    objects: dict[str, Obj] = field(default_factory=dict)

    def render(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.id,
            "owner": "",
            "public": self.public,
            "type": "STANDARD",
            "file_size_limit": self.file_size_limit,
            "allowed_mime_types": self.allowed_mime_types,
            "created_at": _iso(self.created),
            "updated_at": _iso(self.updated),
        }


def storage_error(status: int, code: str, message: str, error: str | None = None) -> ApiError:
    return ApiError(status, code, message, error)


def no_bucket() -> ApiError:
    return storage_error(404, "NoSuchBucket", "Bucket not found", "Bucket not found")


def no_object() -> ApiError:
    return storage_error(404, "NoSuchKey", "Object not found", "not_found")


def _like_regex(pattern: str) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        i += 1
    return re.compile("".join(out), re.IGNORECASE | re.DOTALL)


class SupabaseEmulator:
    """The emulator's state and WSGI app; `start()` serves it on 127.0.0.1 in a thread."""

    def __init__(
        self, service_key: str = "emulated-service-role-key", *, max_vector_buckets: int = 10
    ) -> None:
        self.service_key = service_key
        self._secret = uuid.uuid4().bytes
        self._lock = threading.RLock()
        self.buckets: dict[str, BucketRec] = {}
        self.vectors = VectorState(max_buckets=max_vector_buckets)
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request, for tests
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # -- lifecycle -------------------------------------------------------------
    def start(self) -> SupabaseEmulator:
        class Handler(WSGIRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, like the real service

            def log_request(self, *args: Any, **kwargs: Any) -> None:
                pass

        self._server = make_server("127.0.0.1", 0, self.wsgi, threaded=True, request_handler=Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="supabase-emulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None

    def reset(self) -> None:
        with self._lock:
            self.buckets.clear()
            self.requests.clear()
        self.vectors.reset()

    # -- WSGI --------------------------------------------------------------------
    def wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        try:
            response = self._dispatch(request)
        except ApiError as exc:
            vector_route = request.path.startswith(PREFIX + "/vector/")
            http_status = exc.status if vector_route or exc.status >= 500 else 400
            response = Response(json.dumps(exc.body()), status=http_status, content_type="application/json")
        return response(environ, start_response)

    def _dispatch(self, req: Request) -> Response:
        path = req.path
        with self._lock:
            self.requests.append((req.method, path))
        if not path.startswith(PREFIX + "/"):
            raise storage_error(404, "NotFound", f"Route {req.method}:{path} not found")
        route = path[len(PREFIX) :]
        # Signed downloads carry their own token instead of the service key.
        if req.method == "GET" and route.startswith("/object/sign/"):
            return self._signed_download(req, route[len("/object/sign/") :])
        self._authorize(req)
        if route.startswith("/vector/"):
            body = self._json(req)
            return self._ok(self.vectors.handle(route[len("/vector/") :], body))
        if route == "/bucket" or route.startswith("/bucket/"):
            return self._bucket_route(req, route)
        if route.startswith("/object/"):
            return self._object_route(req, route[len("/object/") :])
        raise storage_error(404, "NotFound", f"Route {req.method}:{path} not found")

    def _authorize(self, req: Request) -> None:
        auth = req.headers.get("Authorization", "")
        if not auth:
            raise storage_error(400, "InvalidJWT", "headers must have required property 'authorization'")
        if not hmac.compare_digest(auth, f"Bearer {self.service_key}"):
            raise storage_error(403, "InvalidJWT", "invalid signature", "Unauthorized")

    @staticmethod
    def _json(req: Request) -> dict[str, Any]:
        raw = req.get_data()
        if not raw:
            return {}
        try:
            body = json.loads(raw)
        except ValueError:
            raise storage_error(400, "InvalidRequest", "Body is not valid JSON") from None
        if not isinstance(body, dict):
            raise storage_error(400, "InvalidRequest", "body must be object")
        return body

    @staticmethod
    def _ok(data: Any, status: int = 200) -> Response:
        return Response(json.dumps(data), status=status, content_type="application/json")

    def _bucket_rec(self, bucket_id: str) -> BucketRec:
        rec = self.buckets.get(bucket_id)
        if rec is None:
            raise no_bucket()
        return rec

    # -- buckets -------------------------------------------------------------------
    def _bucket_route(self, req: Request, route: str) -> Response:
        parts = route.strip("/").split("/")
        with self._lock:
            if route == "/bucket" and req.method == "GET":
                return self._ok([b.render() for b in sorted(self.buckets.values(), key=lambda b: b.id)])
            if route == "/bucket" and req.method == "POST":
                body = self._json(req)
                bid = body.get("id") or body.get("name")
                if not isinstance(bid, str) or not bid or len(bid) > 63 or "/" in bid:
                    raise storage_error(400, "InvalidBucketName", "Bucket name invalid", "Invalid Input")
                if bid in self.buckets:
                    raise storage_error(
                        409, "BucketAlreadyExists", "The resource already exists", "Duplicate"
                    )
                self.buckets[bid] = BucketRec(
                    id=bid,
                    public=bool(body.get("public", False)),
                    file_size_limit=body.get("file_size_limit"),
                    allowed_mime_types=body.get("allowed_mime_types"),
                )
                return self._ok({"name": bid})
            if len(parts) == 2 and req.method == "GET":
                return self._ok(self._bucket_rec(parts[1]).render())
            if len(parts) == 2 and req.method == "PUT":
                rec = self._bucket_rec(parts[1])
                body = self._json(req)
                if "public" in body:
                    rec.public = bool(body["public"])
                if "file_size_limit" in body:
                    rec.file_size_limit = body["file_size_limit"]
                if "allowed_mime_types" in body:
                    rec.allowed_mime_types = body["allowed_mime_types"]
                rec.updated = time.time()
                return self._ok({"message": "Successfully updated"})
            if len(parts) == 3 and parts[2] == "empty" and req.method == "POST":
                self._bucket_rec(parts[1]).objects.clear()
                return self._ok({"message": "Successfully emptied"})
            if len(parts) == 2 and req.method == "DELETE":
                rec = self._bucket_rec(parts[1])
                if rec.objects:
                    raise storage_error(
                        409, "ResourceNotEmpty", "The bucket you tried to delete is not empty"
                    )
                del self.buckets[rec.id]
                return self._ok({"message": "Successfully deleted"})
        raise storage_error(404, "NotFound", f"Route {req.method}:{route} not found")

    # -- objects ---------------------------------------------------------------------
    @staticmethod
    def _split(rest: str) -> tuple[str, str]:
        bucket, _, key = rest.partition("/")
        return bucket, key

    @staticmethod
    def _check_key(key: str) -> None:
        if not key or not KEY_RE.fullmatch(key):
            raise storage_error(400, "InvalidKey", f"Invalid key: {key}")

    def _object_route(self, req: Request, rest: str) -> Response:
        m = req.method
        if rest.startswith("list/") and m == "POST":
            return self._list(rest[len("list/") :], self._json(req))
        if rest.startswith("info/") and m == "GET":
            rest = rest[len("info/") :]
            rest = rest[len("authenticated/") :] if rest.startswith("authenticated/") else rest
            return self._info(*self._split(rest))
        if rest.startswith("sign/") and m == "POST":
            bucket, key = self._split(rest[len("sign/") :])
            return self._sign(bucket, key, self._json(req))
        if rest in ("move", "copy") and m == "POST":
            return self._move_copy(rest, req)
        if rest.startswith("authenticated/") and m == "GET":
            return self._download(*self._split(rest[len("authenticated/") :]), head=False)
        bucket, key = self._split(rest)
        if not key and m == "DELETE":
            return self._remove(bucket, self._json(req))
        if m in ("POST", "PUT"):
            return self._upload(req, bucket, key, upsert=m == "PUT" or req.headers.get("x-upsert") == "true")
        if m in ("GET", "HEAD"):
            return self._download(bucket, key, head=m == "HEAD")
        if m == "DELETE":
            with self._lock:
                rec = self._bucket_rec(bucket)
                obj = rec.objects.pop(key, None)
                if obj is None:
                    raise no_object()
                return self._ok({"message": "Successfully deleted"})
        raise storage_error(404, "NotFound", f"Route {m}:/object/{rest} not found")

    def _upload(self, req: Request, bucket: str, key: str, *, upsert: bool) -> Response:
        self._check_key(key)
        if req.mimetype == "multipart/form-data":
            upload = req.files.get("file")
            if upload is None:
                raise storage_error(400, "InvalidRequest", "No content provided")
            data = upload.read()
            content_type = upload.mimetype or "application/octet-stream"
            cache_control = req.form.get("cacheControl", "3600")
            raw_meta = req.form.get("metadata")
        else:
            data = req.get_data()
            content_type = req.mimetype or "application/octet-stream"
            cache_control = req.headers.get("cache-control", "3600")
            raw_meta = None
            if "x-metadata" in req.headers:
                raw_meta = base64.b64decode(req.headers["x-metadata"]).decode()
        user_metadata = None
        if raw_meta:
            try:
                user_metadata = json.loads(raw_meta)
            except ValueError:
                raise storage_error(400, "InvalidRequest", "metadata is not valid JSON") from None
        with self._lock:
            rec = self._bucket_rec(bucket)
            if rec.file_size_limit is not None and len(data) > int(rec.file_size_limit):
                raise storage_error(
                    413, "EntityTooLarge", "The object exceeded the maximum allowed size", "Payload too large"
                )
            existing = rec.objects.get(key)
            if existing is not None and not upsert:
                raise storage_error(409, "KeyAlreadyExists", "The resource already exists", "Duplicate")
            obj = Obj(
                data=data, content_type=content_type, cache_control=cache_control, user_metadata=user_metadata
            )
            if existing is not None:
                obj.id = existing.id
                obj.created = existing.created
            rec.objects[key] = obj
            return self._ok({"Key": f"{bucket}/{key}", "Id": obj.id, "id": obj.id})

    def _find(self, bucket: str, key: str) -> Obj:
        rec = self._bucket_rec(bucket)
        obj = rec.objects.get(key)
        if obj is None:
            raise no_object()
        return obj

    def _object_response(self, obj: Obj, head: bool, download: str | None = None) -> Response:
        resp = Response(b"" if head else obj.data, status=200, content_type=obj.content_type)
        resp.headers["ETag"] = obj.etag
        resp.headers["Last-Modified"] = _http_date(obj.updated)
        resp.headers["Cache-Control"] = f"max-age={obj.cache_control}"
        if head:
            resp.headers["Content-Length"] = str(len(obj.data))
        if download is not None:
            resp.headers["Content-Disposition"] = f"attachment; filename={quote(download or 'download')}"
        return resp

    def _download(self, bucket: str, key: str, *, head: bool) -> Response:
        with self._lock:
            obj = self._find(bucket, key)
        return self._object_response(obj, head)

    def _info(self, bucket: str, key: str) -> Response:
        with self._lock:
            obj = self._find(bucket, key)
        body = {
            "id": obj.id,
            "name": key,
            "version": obj.version,
            "bucket_id": bucket,
            "size": len(obj.data),
            "content_type": obj.content_type,
            "cache_control": f"max-age={obj.cache_control}",
            "etag": obj.etag,
            "metadata": obj.user_metadata,
            "last_modified": _iso(obj.updated),
            "created_at": _iso(obj.created),
        }
        resp = self._ok(body)
        resp.headers["ETag"] = obj.etag
        return resp

    def _remove(self, bucket: str, body: dict[str, Any]) -> Response:
        prefixes = body.get("prefixes")
        if not isinstance(prefixes, list) or not prefixes or not all(isinstance(p, str) for p in prefixes):
            raise storage_error(400, "InvalidRequest", "body/prefixes must NOT have fewer than 1 items")
        if len(prefixes) > MAX_DELETE_PREFIXES:
            raise storage_error(
                400,
                "InvalidRequest",
                f"Bulk object requests are limited to {MAX_DELETE_PREFIXES} objects per request.",
            )
        removed = []
        with self._lock:
            rec = self._bucket_rec(bucket)
            for key in dict.fromkeys(prefixes):
                obj = rec.objects.pop(key, None)
                if obj is not None:
                    removed.append(self._row(bucket, key, obj))
        return self._ok(removed)

    @staticmethod
    def _row(bucket: str, name: str, obj: Obj) -> dict[str, Any]:
        return {
            "bucket_id": bucket,
            "name": name,
            "id": obj.id,
            "owner": "",
            "version": obj.version,
            "updated_at": _iso(obj.updated),
            "created_at": _iso(obj.created),
            "last_accessed_at": _iso(obj.updated),
            "metadata": obj.metadata(),
            "user_metadata": obj.user_metadata,
        }

    def _list(self, bucket: str, body: dict[str, Any]) -> Response:
        prefix = body.get("prefix")
        if not isinstance(prefix, str):
            raise storage_error(400, "InvalidRequest", "body must have required property 'prefix'")
        limit = body.get("limit", 100)
        offset = body.get("offset", 0)
        if not isinstance(limit, int) or limit < 1:
            raise storage_error(400, "InvalidRequest", "body/limit must be >= 1")
        if not isinstance(offset, int) or offset < 0:
            raise storage_error(400, "InvalidRequest", "body/offset must be >= 0")
        sort = body.get("sortBy") or {}
        column = sort.get("column", "name")
        descending = sort.get("order", "asc") == "desc"
        if prefix and not prefix.endswith("/"):
            prefix += "/"  # Storage takes the prefix as a folder
        search = body.get("search") or ""
        pattern = _like_regex(search + "%")
        with self._lock:
            rec = self._bucket_rec(bucket)
            folders: set[str] = set()
            files: list[tuple[str, Obj]] = []
            for key, obj in rec.objects.items():
                if not key.startswith(prefix):
                    continue
                rest = key[len(prefix) :]
                segment, slash, _ = rest.partition("/")
                if not pattern.match(segment):
                    continue
                if slash:
                    folders.add(segment)
                else:
                    files.append((segment, obj))
        folder_rows = [
            {
                "name": f,
                "id": None,
                "updated_at": None,
                "created_at": None,
                "last_accessed_at": None,
                "metadata": None,
            }
            for f in sorted(folders, reverse=descending)
        ]
        if column == "name":
            files.sort(key=lambda t: t[0], reverse=descending)
        else:
            attr = {"updated_at": "updated", "created_at": "created", "last_accessed_at": "updated"}.get(
                column
            )
            if attr is None:
                raise storage_error(
                    400, "InvalidRequest", "body/sortBy/column must be equal to one of the allowed values"
                )
            files.sort(key=lambda t: (getattr(t[1], attr), t[0]), reverse=descending)
        file_rows = [
            {
                "name": name,
                "id": obj.id,
                "updated_at": _iso(obj.updated),
                "created_at": _iso(obj.created),
                "last_accessed_at": _iso(obj.updated),
                "metadata": obj.metadata(),
            }
            for name, obj in files
        ]
        rows = (folder_rows + file_rows)[offset : offset + limit]
        return self._ok(rows)

    def _move_copy(self, op: str, req: Request) -> Response:
        body = self._json(req)
        bucket = body.get("bucketId")
        src, dst = body.get("sourceKey"), body.get("destinationKey")
        dst_bucket = body.get("destinationBucket") or bucket
        if not all(isinstance(v, str) and v for v in (bucket, src, dst)):
            raise storage_error(400, "InvalidRequest", "bucketId, sourceKey and destinationKey are required")
        self._check_key(dst)
        with self._lock:
            obj = self._find(bucket, src)
            target = self._bucket_rec(dst_bucket)
            upsert = op == "copy" and req.headers.get("x-upsert") == "true"
            if dst in target.objects and not upsert:
                raise storage_error(409, "KeyAlreadyExists", "The resource already exists", "Duplicate")
            clone = Obj(obj.data, obj.content_type, obj.cache_control, obj.user_metadata)
            if op == "move":
                clone.id = obj.id
                del self.buckets[bucket].objects[src]
            target.objects[dst] = clone
        if op == "move":
            return self._ok({"message": "Successfully moved"})
        return self._ok({"Key": f"{dst_bucket}/{dst}", "Id": clone.id})

    # -- signed URLs -----------------------------------------------------------------
    def _token(self, payload: dict[str, Any]) -> str:
        raw = base64.urlsafe_b64encode(json.dumps(payload, sort_keys=True).encode()).decode().rstrip("=")
        sig = hmac.new(self._secret, raw.encode(), hashlib.sha256).hexdigest()
        return f"{raw}.{sig}"

    def _sign(self, bucket: str, key: str, body: dict[str, Any]) -> Response:
        try:
            expires_in = int(body.get("expiresIn", 0))
        except (TypeError, ValueError):
            raise storage_error(400, "InvalidRequest", "body/expiresIn must be integer") from None
        if expires_in < 1:
            raise storage_error(400, "InvalidRequest", "body/expiresIn must be >= 1")
        with self._lock:
            self._find(bucket, key)
        token = self._token({"url": f"{bucket}/{key}", "exp": time.time() + expires_in})
        signed = f"/object/sign/{quote(bucket)}/{quote(key)}?token={token}"
        return self._ok({"signedURL": signed})

    def _signed_download(self, req: Request, rest: str) -> Response:
        token = req.args.get("token", "")
        raw, _, sig = token.partition(".")
        good = hmac.new(self._secret, raw.encode(), hashlib.sha256).hexdigest()
        if not raw or not hmac.compare_digest(sig, good):
            raise storage_error(400, "InvalidSignature", "Invalid signature")
        payload = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        if payload["exp"] < time.time():
            raise storage_error(400, "InvalidJWT", "jwt expired")
        if payload["url"] != rest:
            raise storage_error(400, "InvalidSignature", "The url do not match the signature")
        bucket, key = self._split(rest)
        with self._lock:
            obj = self._find(bucket, key)
        return self._object_response(obj, head=False, download=req.args.get("download"))


def main() -> None:  # pragma: no cover - manual use: python -m tests.emulators.supabase_emulator
    emu = SupabaseEmulator().start()
    print(f"SUPABASE_URL={emu.url}\nSUPABASE_SERVICE_KEY={emu.service_key}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        emu.stop()


if __name__ == "__main__":  # pragma: no cover
    main()
