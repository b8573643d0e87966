"""A small real HTTP emulator of Supabase Storage (objects, buckets, signed URLs, vector buckets).

It answers the requests the real `supabase` / `storage3` 2.34 client sends, with the behaviour of
supabase/storage (read from its source, and measured against the real server), quirks included:
- every route sits under /storage/v1; the service key is an HS256 JWT (role service_role) checked
  like the server does: no header -> InvalidRequest, not a JWT -> AccessDenied "Invalid Compact JWS",
  wrong signature -> AccessDenied "signature verification failed";
- **a bad key on the public read routes** (`GET /object/{bucket}/{key}`, `/object/info/{bucket}/{key}`)
  is taken as anonymous, so a private bucket answers 404 "Bucket not found"; the
  `/object/authenticated/...` routes answer 403;
- errors of the object/bucket API are rendered as {statusCode: "<code>", code, error, message} with
  HTTP status 400 (500 for internal errors); vector routes use the real HTTP status;
- **create-only uploads are not atomic**: POST without `x-upsert: true` checks for a duplicate first
  (the server's INSERT in a rolled-back transaction), then stores the body (`upload_window` seconds)
  and completes with an upsert, so concurrent create-only uploads of a new key can all succeed and
  the last one wins;
- **list (v1) is case-insensitive**: a port of `storage.search()`, which matches and orders on
  `lower(name)`, returns one folder row per lower-cased folder spelled like the first object found,
  and names rows by cutting the prefix's length off the real name;
- list-v2 (`/object/list-v2`) is byte-ordered and case-sensitive, cursor-paged, at most 1000 a page;
- **a missing bucket lists as `200 []` and batch-removes as `200 []`**;
- remove takes any number of prefixes unless `hard_limits=True` (REQUEST_HARD_LIMITS_ENABLED), then 1000;
- object info has `metadata: {}` without user metadata; an upload without cacheControl gets
  `no-cache`; upload responses carry `Key` and `Id` only; bucket JSON has no `type`;
- delete bucket with objects: 409 ResourceNotEmpty; signed URLs are HMAC tokens with expiry.
State is in memory and guarded by one lock (released while an upload "streams").
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import hmac
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from storekeeper.dev.emulators.supabase_vectors import ApiError, VectorState

PREFIX = "/storage/v1"
MAX_DELETE_PREFIXES = 1000
MAX_SEARCH_LIMIT = 1500  # storage.search(): LEAST(limits, 1500)
MAX_LIST_V2 = 1000
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
        return '"' + hashlib.md5(self.data).hexdigest() + '"'  # noqa: S324 - the ETag the server sends

    def metadata(self) -> dict[str, Any]:
        return {
            "eTag": self.etag,
            "size": len(self.data),
            "mimetype": self.content_type,
            "cacheControl": self.cache_control,
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


def _common_prefix(key: str, prefix: str) -> str | None:
    """storage.get_common_prefix(): the key up to the first '/' after len(prefix), or None."""
    pos = key.find("/", len(prefix))
    return key[: pos + 1] if pos >= 0 else None


def search_v1(
    objects: dict[str, Obj], prefix: str, search: str, limit: int, offset: int
) -> list[dict[str, Any]]:
    """`storage.search()` with name sort ascending: seeks and matches on lower(name) COLLATE "C".

    Folders that differ only in case come back as one row spelled like the first object found;
    a file row's name is the real name with len(prefix) characters cut off (so listing `a/`
    returns `A/3` as `3`); files are fetched in batches of LEAST(GREATEST(limit*2, 100), 1000),
    after each file the seek moves to lower(name) || '/'.
    """
    v_prefix = prefix + search
    low_prefix = v_prefix.lower()
    ordered = sorted((k.lower(), k) for k in objects if k.lower().startswith(low_prefix))
    lows = [lo for lo, _ in ordered]
    batch_size = min(max(limit * 2, 100), 1000)
    rows: list[dict[str, Any]] = []
    skipped = 0
    seek = low_prefix
    while len(rows) < limit:
        i = bisect.bisect_left(lows, seek)
        if i >= len(ordered):
            break
        low, name = ordered[i]
        common = _common_prefix(low, low_prefix)
        if common is not None:  # a folder: one row, then skip every name under it (any case)
            if skipped < offset:
                skipped += 1
            else:
                real = _common_prefix(name, v_prefix) or common
                rows.append(_folder_row(real.rstrip("/")[len(prefix) :]))
            seek = common[:-1] + chr(ord("/") + 1)
            continue
        for low, name in ordered[i : i + batch_size]:
            if _common_prefix(low, low_prefix) is not None:
                seek = low  # a folder: let the peek handle it
                break
            if skipped < offset:
                skipped += 1
            else:
                rows.append(_file_row(name[len(prefix) :], objects[name]))
            seek = low + "/"
            if len(rows) >= limit:
                break
    return rows


def _folder_row(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "id": None,
        "updated_at": None,
        "created_at": None,
        "last_accessed_at": None,
        "metadata": None,
    }


def _file_row(name: str, obj: Obj) -> dict[str, Any]:
    return {
        "name": name,
        "id": obj.id,
        "updated_at": _iso(obj.updated),
        "created_at": _iso(obj.created),
        "last_accessed_at": _iso(obj.updated),
        "metadata": obj.metadata(),
    }


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_jwt(secret: str, claims: dict[str, Any]) -> str:
    """An HS256 JWT, the way Supabase signs its anon and service_role keys."""
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = _b64(json.dumps(claims, separators=(",", ":")).encode())
    sig = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(sig)}"


def verify_jwt(secret: str, token: str) -> dict[str, Any]:
    """The claims of a valid token; ValueError with the server's message otherwise."""
    parts = token.split(".")
    if len(parts) != 3 or not all(parts):
        raise ValueError("Invalid Compact JWS")
    try:
        header = json.loads(_unb64(parts[0]))
        claims = json.loads(_unb64(parts[1]))
        sig = _unb64(parts[2])
    except (ValueError, UnicodeDecodeError):
        raise ValueError("Invalid Compact JWS") from None
    if not isinstance(header, dict) or header.get("alg") != "HS256" or not isinstance(claims, dict):
        raise ValueError("Invalid Compact JWS")
    good = hmac.new(secret.encode(), f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(sig, good):
        raise ValueError("signature verification failed")
    exp = claims.get("exp")
    if isinstance(exp, (int, float)) and exp < time.time():
        raise ValueError('"exp" claim timestamp check failed')
    return claims


def access_denied(message: str) -> ApiError:
    return storage_error(403, "AccessDenied", message, "Unauthorized")


class SupabaseEmulator:
    """The emulator's state and WSGI app; `start()` serves it on 127.0.0.1 in a thread."""

    def __init__(
        self,
        jwt_secret: str | None = None,
        *,
        max_vector_buckets: int = 10,
        hard_limits: bool = False,
        upload_window: float = 0.01,
    ) -> None:
        self.jwt_secret = jwt_secret or uuid.uuid4().hex
        self.service_key = make_jwt(self.jwt_secret, {"role": "service_role", "iss": "supabase-emulator"})
        self.anon_key = make_jwt(self.jwt_secret, {"role": "anon", "iss": "supabase-emulator"})
        #: REQUEST_HARD_LIMITS_ENABLED: batch removes of more than 1000 keys are refused only then
        self.hard_limits = hard_limits
        #: seconds between a create-only upload's duplicate check and its upsert (the body streams)
        self.upload_window = upload_window
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
        if route.startswith("/vector/"):
            self._authorize_vectors(req)
            body = self._json(req)
            return self._ok(self.vectors.handle(route[len("/vector/") :], body))
        if req.method in ("GET", "HEAD") and self._public_read(route):
            # the public read routes take a bad or missing JWT as the anonymous role
            if self._role(req) != "service_role":
                return self._anonymous_read(req, route)
            return self._object_route(req, route[len("/object/") :])
        self._authorize(req)
        if route == "/bucket" or route.startswith("/bucket/"):
            return self._bucket_route(req, route)
        if route.startswith("/object/"):
            return self._object_route(req, route[len("/object/") :])
        raise storage_error(404, "NotFound", f"Route {req.method}:{path} not found")

    @staticmethod
    def _bearer(req: Request) -> str | None:
        auth = req.headers.get("Authorization")
        if auth is None:
            return None
        return auth[len("Bearer ") :] if auth.startswith("Bearer ") else auth

    def _role(self, req: Request) -> str | None:
        """The token's role, None when it is missing or invalid."""
        token = self._bearer(req)
        if token is None:
            return None
        try:
            return str(verify_jwt(self.jwt_secret, token).get("role"))
        except ValueError:
            return None

    def _authorize(self, req: Request) -> None:
        self._require_service_role(
            req,
            storage_error(400, "InvalidRequest", "headers must have required property 'authorization'"),
            access_denied,
            "new row violates row-level security policy",
        )

    def _authorize_vectors(self, req: Request) -> None:
        self._require_service_role(
            req,
            ApiError(403, "AccessDenied", "Missing signature"),
            lambda message: ApiError(403, "AccessDenied", message),
            "Vector buckets need the service role",
        )

    def _require_service_role(
        self, req: Request, missing: ApiError, denied: Callable[[str], ApiError], not_service: str
    ) -> None:
        token = self._bearer(req)
        if token is None:
            raise missing
        try:
            claims = verify_jwt(self.jwt_secret, token)
        except ValueError as exc:
            raise denied(str(exc)) from None
        if claims.get("role") != "service_role":
            raise denied(not_service)

    @staticmethod
    def _public_read(route: str) -> bool:
        """GET/HEAD /object/{bucket}/{key} and /object/info/{bucket}/{key} (not the authenticated ones)."""
        if not route.startswith("/object/"):
            return False
        rest = route[len("/object/") :]
        if rest.startswith("info/"):
            rest = rest[len("info/") :]
        first = rest.partition("/")[0]
        return first not in ("authenticated", "public", "sign", "list", "list-v2", "info") and "/" in rest

    def _anonymous_read(self, req: Request, route: str) -> Response:
        """Row-level security hides private buckets from anon: they look missing."""
        rest = route[len("/object/") :]
        if rest.startswith("info/"):
            rest = rest[len("info/") :]
            bucket, key = self._split(rest)
            with self._lock:
                rec = self.buckets.get(bucket)
                if rec is None or not rec.public:
                    raise no_bucket()
            return self._info(bucket, key)
        bucket, key = self._split(rest)
        with self._lock:
            rec = self.buckets.get(bucket)
            if rec is None or not rec.public:
                raise no_bucket()
        return self._download(bucket, key, head=req.method == "HEAD")

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
        if rest.startswith("list-v2/") and m == "POST":
            return self._list_v2(rest[len("list-v2/") :], self._json(req))
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
            raw_cache = req.form.get("cacheControl")
            raw_meta = req.form.get("metadata")
        else:
            data = req.get_data()
            content_type = req.mimetype or "application/octet-stream"
            raw_cache = req.headers.get("cache-control")
            raw_meta = None
            if "x-metadata" in req.headers:
                raw_meta = base64.b64decode(req.headers["x-metadata"]).decode()
        cache_control = f"max-age={raw_cache}" if raw_cache else "no-cache"
        user_metadata = None
        if raw_meta:
            try:
                user_metadata = json.loads(raw_meta)
            except ValueError:
                raise storage_error(400, "InvalidRequest", "metadata is not valid JSON") from None
        # 1. canUpload: the duplicate check, an INSERT in a transaction that is rolled back
        with self._lock:
            rec = self._bucket_rec(bucket)
            if rec.file_size_limit is not None and len(data) > int(rec.file_size_limit):
                raise storage_error(
                    413, "EntityTooLarge", "The object exceeded the maximum allowed size", "Payload too large"
                )
            if key in rec.objects and not upsert:
                raise storage_error(409, "KeyAlreadyExists", "The resource already exists", "Duplicate")
        # 2. the body goes to the storage backend: nothing is held meanwhile
        if self.upload_window > 0:
            time.sleep(self.upload_window)
        # 3. completeUpload: INSERT ... ON CONFLICT DO UPDATE, whatever x-upsert said
        obj = Obj(
            data=data, content_type=content_type, cache_control=cache_control, user_metadata=user_metadata
        )
        with self._lock:
            rec = self._bucket_rec(bucket)
            existing = rec.objects.get(key)
            if existing is not None:
                obj.id = existing.id
                obj.created = existing.created
            rec.objects[key] = obj
        return self._ok({"Key": f"{bucket}/{key}", "Id": obj.id})

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
        resp.headers["Cache-Control"] = obj.cache_control
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
            "cache_control": obj.cache_control,
            "etag": obj.etag,
            "metadata": obj.user_metadata or {},
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
        if self.hard_limits and len(prefixes) > MAX_DELETE_PREFIXES:
            raise storage_error(
                400,
                "InvalidRequest",
                f"Bulk object requests are limited to {MAX_DELETE_PREFIXES} objects per request.",
            )
        removed: list[dict[str, Any]] = []
        with self._lock:
            rec = self.buckets.get(bucket)
            if rec is None:
                return self._ok(removed)  # DELETE ... WHERE bucket_id = $1: nothing, and no error
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
        """POST /object/list: a port of `storage.search()` (name sort), case-insensitive as it is."""
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
        if sort.get("column", "name") not in ("name", "updated_at", "created_at", "last_accessed_at"):
            raise storage_error(
                400, "InvalidRequest", "body/sortBy/column must be equal to one of the allowed values"
            )
        if sort.get("column", "name") != "name" or sort.get("order", "asc") != "asc":
            raise storage_error(501, "NotImplemented", "the emulator lists by name, ascending, only")
        if prefix and not prefix.endswith("/"):
            prefix += "/"  # searchObjects(): "assuming prefix is always a folder"
        search = body.get("search") or ""
        with self._lock:
            rec = self.buckets.get(bucket)
            objects = dict(rec.objects) if rec is not None else {}  # a missing bucket: 200 []
        rows = search_v1(objects, prefix, search, min(limit, MAX_SEARCH_LIMIT), offset)
        return self._ok(rows)

    def _list_v2(self, bucket: str, body: dict[str, Any]) -> Response:
        """POST /object/list-v2: byte order (COLLATE "C"), case-sensitive, cursor pages."""
        prefix = body.get("prefix") or ""
        raw_limit = body.get("limit")
        if raw_limit is not None and (not isinstance(raw_limit, int) or raw_limit < 1):
            raise storage_error(400, "InvalidRequest", "body/limit must be >= 1")
        limit = min(raw_limit or MAX_LIST_V2, MAX_LIST_V2)
        delimiter = "/" if body.get("with_delimiter") else None
        start_after = ""
        if body.get("cursor"):
            try:
                parts = base64.b64decode(str(body["cursor"])).decode().split("\n")
                start_after = next(p[2:] for p in parts if p.startswith("l:"))
            except (ValueError, UnicodeDecodeError, StopIteration):
                raise storage_error(400, "InvalidParameter", "Invalid Parameter continuation token") from None
        with self._lock:
            rec = self.buckets.get(bucket)
            objects = dict(rec.objects) if rec is not None else {}
        names = sorted(k for k in objects if k.startswith(prefix) and k > start_after)
        entries: list[tuple[str, Obj | None]] = []
        last_folder = ""
        for name in names:
            if len(entries) > limit:
                break
            if delimiter is not None:
                idx = name.find(delimiter, len(prefix))
                if idx >= 0:
                    folder = name[: idx + 1]
                    if folder != last_folder:
                        last_folder = folder
                        entries.append((folder, None))
                    continue
            entries.append((name, objects[name]))
        truncated = len(entries) > limit
        page = entries[:limit]
        result: dict[str, Any] = {
            "hasNext": truncated,
            "folders": [{"name": n, "key": n, "id": None} for n, o in page if o is None],
            "objects": [self._v2_row(bucket, n, o) for n, o in page if o is not None],
        }
        if truncated:
            result["nextCursor"] = base64.b64encode(f"l:{page[-1][0]}".encode()).decode()
            result["nextCursorKey"] = page[-1][0]
        return self._ok(result)

    @staticmethod
    def _v2_row(bucket: str, name: str, obj: Obj) -> dict[str, Any]:
        return {
            "id": obj.id,
            "name": name,
            "key": name,
            "bucket_id": bucket,
            "updated_at": _iso(obj.updated),
            "created_at": _iso(obj.created),
            "last_accessed_at": _iso(obj.updated),
            "metadata": obj.metadata(),
        }

    def _move_copy(self, op: str, req: Request) -> Response:
        body = self._json(req)
        bucket, src, dst = body.get("bucketId"), body.get("sourceKey"), body.get("destinationKey")
        if not (
            isinstance(bucket, str)
            and isinstance(src, str)
            and isinstance(dst, str)
            and bucket
            and src
            and dst
        ):
            raise storage_error(400, "InvalidRequest", "bucketId, sourceKey and destinationKey are required")
        dst_bucket = str(body.get("destinationBucket") or bucket)
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


def main() -> None:  # pragma: no cover - manual use: python -m storekeeper.dev.emulators.supabase_emulator
    emu = SupabaseEmulator().start()
    print(f"SUPABASE_URL={emu.url}\nSUPABASE_SERVICE_KEY={emu.service_key}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        emu.stop()


if __name__ == "__main__":  # pragma: no cover
    main()
