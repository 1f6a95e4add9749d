"""A fake DigitalOcean v2 API: real HTTP and JSON, in a thread, on 127.0.0.1.

It covers what the project's module and inventory plugin use, with the shapes
and error bodies of the real API:

* droplets (list with ``tag_name`` and pagination, create, get, delete) that
  go from ``new`` to ``active`` after a delay or a number of polls, and get a
  public and a private (VPC) address when they become active;
* actions (the create action of each droplet: in-progress, then completed or
  errored);
* VPCs, cloud firewalls (sources by address, tag or load balancer), tags
  (with tagging of droplets) and SSH keys;
* load balancers (module :mod:`.load_balancers`), new then active;
* 401 for a bad token, 422 for an unknown size, image or region (or a
  duplicate SSH key or VPC name), 404 for unknown resources, and injected
  faults: 429 rate limits, 5xx, or a request held until the test releases it
  (to interrupt a run in the middle).

Every address it hands out is in 127.0.0.0/8, so nothing that follows them can
leave the machine. Use it as a context manager::

    with FakeDigitalOcean(FakeConfig(active_after_seconds=0.5)) as fake:
        os.environ["DIGITALOCEAN_END_POINT"] = fake.url
        ...
        assert fake.duplicate_names() == {}
"""

from __future__ import annotations

import base64
import copy
import hashlib
import ipaddress
import itertools
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from .load_balancers import LoadBalancerRoutes

Response = tuple[int, dict[str, Any] | None, dict[str, str]]

DEFAULT_TOKEN = "fake-digitalocean-token"

DEFAULT_REGIONS: dict[str, dict[str, Any]] = {
    slug: {"slug": slug, "name": name, "available": available, "features": ["metadata"]}
    for slug, name, available in (
        ("fra1", "Frankfurt 1", True),
        ("ams3", "Amsterdam 3", True),
        ("lon1", "London 1", True),
        ("nyc1", "New York 1", True),
        ("ams2", "Amsterdam 2", False),
    )
}

DEFAULT_SIZES: dict[str, dict[str, Any]] = {
    slug: {
        "slug": slug,
        "memory": memory,
        "vcpus": vcpus,
        "disk": disk,
        "transfer": transfer,
        "price_monthly": price,
        "price_hourly": round(price / 672, 5),
        "regions": ["fra1", "ams3", "lon1", "nyc1"],
        "available": True,
        "description": "Basic",
    }
    for slug, memory, vcpus, disk, transfer, price in (
        ("s-1vcpu-1gb", 1024, 1, 25, 1.0, 6.0),
        ("s-1vcpu-2gb", 2048, 1, 50, 2.0, 12.0),
        ("s-2vcpu-2gb", 2048, 2, 60, 3.0, 18.0),
        ("s-2vcpu-4gb", 4096, 2, 80, 4.0, 24.0),
        ("s-4vcpu-8gb", 8192, 4, 160, 5.0, 48.0),
    )
}

DEFAULT_IMAGES: dict[str, dict[str, Any]] = {
    slug: {
        "id": image_id,
        "slug": slug,
        "name": name,
        "distribution": distribution,
        "type": "base",
        "public": True,
        "regions": ["fra1", "ams3", "lon1", "nyc1"],
        "min_disk_size": 7,
        "status": "available",
    }
    for image_id, slug, name, distribution in (
        (159651797, "ubuntu-24-04-x64", "24.04 (LTS) x64", "Ubuntu"),
        (129211873, "ubuntu-22-04-x64", "22.04 (LTS) x64", "Ubuntu"),
        (155022421, "debian-12-x64", "12 x64", "Debian"),
    )
}

TAG_RE = re.compile(r"^[A-Za-z0-9:_-]{1,255}$")
HOSTNAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,253}[A-Za-z0-9])?$")


@dataclass
class FakeConfig:
    """How the fake behaves; every delay is short by default so tests stay fast."""

    # The only token accepted (``Authorization: Bearer <token>``).
    token: str = DEFAULT_TOKEN
    # A new droplet becomes active this many seconds after it was created...
    active_after_seconds: float | None = 1.0
    # ...or after it has been read this many times (list, get, or its action).
    active_after_polls: int | None = None
    # Largest page a list returns, whatever per_page asks (the real API: 200).
    max_per_page: int = 200
    # Seconds announced in the Retry-After header of an injected 429.
    retry_after: float = 0.0
    # Droplets with these names fail to build: their create action errors.
    failing_droplet_names: set[str] = field(default_factory=set)
    # Catalogue of the account.
    regions: dict[str, dict[str, Any]] = field(
        default_factory=lambda: copy.deepcopy(DEFAULT_REGIONS)
    )
    sizes: dict[str, dict[str, Any]] = field(default_factory=lambda: copy.deepcopy(DEFAULT_SIZES))
    images: dict[str, dict[str, Any]] = field(default_factory=lambda: copy.deepcopy(DEFAULT_IMAGES))


@dataclass
class Fault:
    """An injected answer for the next ``times`` requests that match."""

    method: str | None
    path: re.Pattern[str]
    status: int
    times: int
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    served: int = 0


@dataclass
class Hold:
    """Blocks the ``nth`` matching request until :meth:`release`; then it is served normally."""

    method: str
    path: re.Pattern[str]
    nth: int
    seen: int = 0
    reached: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)

    def release(self) -> None:
        """Let the held request go on."""
        self.released.set()


@dataclass
class RequestRecord:
    """One request the fake answered."""

    method: str
    path: str
    query: dict[str, list[str]]
    status: int
    body: Any = None


def _error(status: int, error_id: str, message: str) -> Response:
    return status, {"id": error_id, "message": message}, {}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class FakeDigitalOcean(LoadBalancerRoutes):
    """The fake API server and its in-memory account."""

    def __init__(self, config: FakeConfig | None = None) -> None:
        self.config = config or FakeConfig()
        self.lock = threading.RLock()
        self.droplets: dict[int, dict[str, Any]] = {}
        self.actions: dict[int, dict[str, Any]] = {}
        self.vpcs: dict[str, dict[str, Any]] = {}
        self.firewalls: dict[str, dict[str, Any]] = {}
        self.tags: dict[str, dict[str, Any]] = {}
        self.ssh_keys: dict[int, dict[str, Any]] = {}
        self.load_balancers: dict[str, dict[str, Any]] = {}
        self._lb_meta: dict[str, dict[str, Any]] = {}
        self._lb_ips = itertools.count(10)
        self.requests: list[RequestRecord] = []
        self.faults: list[Fault] = []
        self.holds: list[Hold] = []
        # Droplets ever created through the API (deletions do not lower it).
        self.droplets_created = 0
        self._ids = itertools.count(3_000_001)
        self._public_ips = itertools.count(10)
        self._vpc_ranges = itertools.count(0)
        self._droplet_meta: dict[int, dict[str, Any]] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle ---------------------------------------------------------

    def start(self, port: int = 0) -> FakeDigitalOcean:
        """Listen on 127.0.0.1 (on a free port unless one is given), in a daemon thread."""
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-digitalocean",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and release held requests."""
        for hold in self.holds:
            hold.release()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeDigitalOcean:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The TCP port the fake listens on."""
        assert self._server is not None, "the fake is not started"
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The API end point, as DIGITALOCEAN_END_POINT wants it."""
        return f"http://127.0.0.1:{self.port}/v2/"

    # -- test controls ------------------------------------------------------

    def inject(
        self,
        status: int,
        method: str | None = None,
        path: str = ".*",
        times: int = 1,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Fault:
        """Answer the next ``times`` matching requests with ``status`` instead."""
        if body is None:
            body = {"id": f"http_{status}", "message": f"injected HTTP {status}"}
        fault = Fault(method, re.compile(path), status, times, body, dict(headers or {}))
        with self.lock:
            self.faults.append(fault)
        return fault

    def rate_limit(self, times: int, method: str | None = None, path: str = ".*") -> Fault:
        """Answer the next ``times`` matching requests with 429, as DigitalOcean does."""
        reset = int(time.time()) + 1
        return self.inject(
            429,
            method,
            path,
            times,
            {"id": "too_many_requests", "message": "API Rate limit exceeded."},
            {
                "Retry-After": f"{self.config.retry_after:g}",
                "RateLimit-Limit": "5000",
                "RateLimit-Remaining": "0",
                "RateLimit-Reset": str(reset),
            },
        )

    def hold(self, method: str, path: str, nth: int = 1) -> Hold:
        """Hold the ``nth`` matching request until the test releases it."""
        hold = Hold(method, re.compile(path), nth)
        with self.lock:
            self.holds.append(hold)
        return hold

    def add_droplet(
        self,
        name: str,
        tags: list[str],
        size: str = "s-1vcpu-1gb",
        region: str = "fra1",
        status: str = "active",
    ) -> dict[str, Any]:
        """Put a droplet in the account directly (one this project did not make)."""
        with self.lock:
            droplet = self._new_droplet(name, size, "ubuntu-24-04-x64", region, None, tags, [])
            if status == "active":
                self._activate(droplet)
            return droplet

    # -- test observations --------------------------------------------------

    def droplet_names(self) -> list[str]:
        """Names of the live droplets, sorted (a name appears once per droplet)."""
        with self.lock:
            return sorted(d["name"] for d in self.droplets.values())

    def duplicate_names(self) -> dict[str, int]:
        """Names held by more than one live droplet, with how many hold each."""
        counts: dict[str, int] = {}
        for name in self.droplet_names():
            counts[name] = counts.get(name, 0) + 1
        return {name: count for name, count in counts.items() if count > 1}

    def writes(self, since: int = 0) -> list[RequestRecord]:
        """Requests that change something (POST, PUT, PATCH, DELETE) from index ``since``."""
        with self.lock:
            return [
                r for r in self.requests[since:] if r.method in ("POST", "PUT", "PATCH", "DELETE")
            ]

    def count(self, method: str, path: str, status: int | None = None) -> int:
        """How many requests matched a method and a path pattern (and a status)."""
        pattern = re.compile(path)
        with self.lock:
            return sum(
                1
                for r in self.requests
                if r.method == method
                and pattern.search(r.path)
                and (status is None or r.status == status)
            )

    # -- request handling ---------------------------------------------------

    def handle(
        self, method: str, target: str, headers: dict[str, str], raw_body: bytes
    ) -> Response:
        """Answer one request (called by the HTTP handler thread)."""
        split = urlsplit(target)
        path = split.path.rstrip("/") or "/"
        query = parse_qs(split.query)
        body: Any = None
        if raw_body:
            try:
                body = json.loads(raw_body)
            except ValueError:
                return self._record(
                    method, path, query, None, _error(400, "bad_request", "bad JSON")
                )
        hold = self._matching_hold(method, path)
        if hold is not None:
            hold.reached.set()
            hold.released.wait(timeout=60)
        try:
            answer = self._answer(method, path, query, body or {}, headers)
        finally:
            if hold is not None:
                hold.done.set()
        return self._record(method, path, query, body, answer)

    def _record(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        body: Any,
        answer: Response,
    ) -> Response:
        with self.lock:
            self.requests.append(RequestRecord(method, path, query, answer[0], body))
        return answer

    def _matching_hold(self, method: str, path: str) -> Hold | None:
        with self.lock:
            for hold in self.holds:
                if hold.method == method and hold.path.search(path):
                    hold.seen += 1
                    if hold.seen == hold.nth:
                        return hold
        return None

    def _answer(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        body: dict[str, Any],
        headers: dict[str, str],
    ) -> Response:
        if headers.get("authorization") != f"Bearer {self.config.token}":
            return _error(401, "unauthorized", "Unable to authenticate you")
        with self.lock:
            for fault in self.faults:
                if fault.served < fault.times and (fault.method in (None, method)):
                    if fault.path.search(path):
                        fault.served += 1
                        return fault.status, copy.deepcopy(fault.body), dict(fault.headers)
            for route_method, pattern, handler in self._routes():
                if route_method != method:
                    continue
                match = re.fullmatch(pattern, path)
                if match:
                    return handler(*match.groups(), query=query, body=body)
        return _error(404, "not_found", "The resource you were accessing could not be found.")

    def _routes(self) -> list[tuple[str, str, Any]]:
        return [
            ("GET", r"/v2/account", self._get_account),
            ("GET", r"/v2/sizes", self._list_sizes),
            ("GET", r"/v2/regions", self._list_regions),
            ("GET", r"/v2/images/([^/]+)", self._get_image),
            ("GET", r"/v2/droplets", self._list_droplets),
            ("POST", r"/v2/droplets", self._create_droplet),
            ("GET", r"/v2/droplets/(\d+)", self._get_droplet),
            ("DELETE", r"/v2/droplets/(\d+)", self._delete_droplet),
            ("GET", r"/v2/droplets/(\d+)/actions/(\d+)", self._get_droplet_action),
            ("GET", r"/v2/actions/(\d+)", self._get_action),
            ("GET", r"/v2/vpcs", self._list_vpcs),
            ("POST", r"/v2/vpcs", self._create_vpc),
            ("GET", r"/v2/vpcs/([^/]+)", self._get_vpc),
            ("DELETE", r"/v2/vpcs/([^/]+)", self._delete_vpc),
            ("GET", r"/v2/account/keys", self._list_keys),
            ("POST", r"/v2/account/keys", self._create_key),
            ("GET", r"/v2/account/keys/([^/]+)", self._get_key),
            ("DELETE", r"/v2/account/keys/([^/]+)", self._delete_key),
            ("GET", r"/v2/tags", self._list_tags),
            ("POST", r"/v2/tags", self._create_tag),
            ("GET", r"/v2/tags/([^/]+)", self._get_tag),
            ("DELETE", r"/v2/tags/([^/]+)", self._delete_tag),
            ("POST", r"/v2/tags/([^/]+)/resources", self._tag_resources),
            ("DELETE", r"/v2/tags/([^/]+)/resources", self._untag_resources),
            ("GET", r"/v2/firewalls", self._list_firewalls),
            ("POST", r"/v2/firewalls", self._create_firewall),
            ("GET", r"/v2/firewalls/([^/]+)", self._get_firewall),
            ("PUT", r"/v2/firewalls/([^/]+)", self._update_firewall),
            ("DELETE", r"/v2/firewalls/([^/]+)", self._delete_firewall),
            *self.load_balancer_routes(),
        ]

    # -- pagination ---------------------------------------------------------

    def _page(
        self, key: str, items: list[dict[str, Any]], path: str, query: dict[str, list[str]]
    ) -> Response:
        try:
            page = max(1, int(query.get("page", ["1"])[0]))
            per_page = int(query.get("per_page", ["20"])[0])
        except ValueError:
            return _error(400, "bad_request", "page and per_page must be integers")
        per_page = max(1, min(per_page, self.config.max_per_page))
        last = max(1, -(-len(items) // per_page))
        chunk = items[(page - 1) * per_page : page * per_page]
        pages: dict[str, str] = {}

        def link(number: int) -> str:
            params = {k: v[0] for k, v in query.items()}
            params.update(page=str(number), per_page=str(per_page))
            return f"http://127.0.0.1:{self.port}{path}?{urlencode(params)}"

        if page > 1:
            pages.update(first=link(1), prev=link(page - 1))
        if page < last:
            pages.update(next=link(page + 1), last=link(last))
        data = {key: copy.deepcopy(chunk), "links": {"pages": pages}, "meta": {"total": len(items)}}
        return 200, data, {}

    # -- account and catalogue ----------------------------------------------

    def _get_account(self, **_: Any) -> Response:
        account = {
            "droplet_limit": 25,
            "email": "ops@ocpizza.example",
            "uuid": "b6fr89dbf6d9156cace5f3c78dc9851d957381ef",
            "email_verified": True,
            "status": "active",
        }
        return 200, {"account": account}, {}

    def _list_sizes(self, query: dict[str, list[str]], **_: Any) -> Response:
        return self._page("sizes", list(self.config.sizes.values()), "/v2/sizes", query)

    def _list_regions(self, query: dict[str, list[str]], **_: Any) -> Response:
        regions = []
        for region in self.config.regions.values():
            sizes = [
                s for s, size in self.config.sizes.items() if region["slug"] in size["regions"]
            ]
            regions.append({**region, "sizes": sizes})
        return self._page("regions", regions, "/v2/regions", query)

    def _find_image(self, ref: str) -> dict[str, Any] | None:
        for image in self.config.images.values():
            if ref in (image["slug"], str(image["id"])):
                return image
        return None

    def _get_image(self, ref: str, **_: Any) -> Response:
        image = self._find_image(ref)
        if image is None:
            return _error(404, "not_found", "The resource you were accessing could not be found.")
        return 200, {"image": copy.deepcopy(image)}, {}

    # -- droplets -----------------------------------------------------------

    def _new_droplet(
        self,
        name: str,
        size: str,
        image: str,
        region: str,
        vpc_uuid: str | None,
        tags: list[str],
        ssh_keys: list[Any],
    ) -> dict[str, Any]:
        droplet_id = next(self._ids)
        size_data = self.config.sizes[size]
        image_data = self._find_image(image) or {"slug": image}
        droplet = {
            "id": droplet_id,
            "name": name,
            "memory": size_data["memory"],
            "vcpus": size_data["vcpus"],
            "disk": size_data["disk"],
            "locked": False,
            "status": "new",
            "kernel": None,
            "created_at": _now(),
            "features": ["monitoring", "private_networking"],
            "backup_ids": [],
            "next_backup_window": None,
            "snapshot_ids": [],
            "image": copy.deepcopy(image_data),
            "volume_ids": [],
            "size": copy.deepcopy(size_data),
            "size_slug": size,
            "networks": {"v4": [], "v6": []},
            "region": copy.deepcopy(self.config.regions[region]),
            "tags": list(dict.fromkeys(tags)),
            "vpc_uuid": vpc_uuid,
        }
        for tag in droplet["tags"]:
            self.tags.setdefault(tag, {"name": tag})
        self.droplets[droplet_id] = droplet
        action_id = next(self._ids)
        self.actions[action_id] = {
            "id": action_id,
            "status": "in-progress",
            "type": "create",
            "started_at": _now(),
            "completed_at": None,
            "resource_id": droplet_id,
            "resource_type": "droplet",
            "region": copy.deepcopy(self.config.regions[region]),
            "region_slug": region,
        }
        self._droplet_meta[droplet_id] = {
            "created": time.monotonic(),
            "polls": 0,
            "action_id": action_id,
            "ssh_keys": list(ssh_keys),
        }
        return droplet

    def _activate(self, droplet: dict[str, Any]) -> None:
        number = next(self._public_ips)
        public = f"127.2.{number // 250}.{number % 250 + 2}"
        v4 = [
            {
                "ip_address": public,
                "netmask": "255.255.240.0",
                "gateway": "127.2.0.1",
                "type": "public",
            }
        ]
        vpc = self.vpcs.get(droplet.get("vpc_uuid") or "")
        if vpc is not None:
            network = ipaddress.ip_network(vpc["ip_range"])
            vpc["_members"] = vpc.get("_members", 1) + 1
            private = str(network.network_address + vpc["_members"])
            v4.append(
                {
                    "ip_address": private,
                    "netmask": str(network.netmask),
                    "gateway": "<nil>",
                    "type": "private",
                }
            )
        droplet["networks"] = {"v4": v4, "v6": []}
        droplet["status"] = "active"
        meta = self._droplet_meta[droplet["id"]]
        action = self.actions[meta["action_id"]]
        action.update(status="completed", completed_at=_now())

    def _advance(self, droplet: dict[str, Any]) -> None:
        """Move a new droplet on: count the poll, activate it when its time has come."""
        if droplet["status"] != "new":
            return
        meta = self._droplet_meta[droplet["id"]]
        meta["polls"] += 1
        if droplet["name"] in self.config.failing_droplet_names:
            self.actions[meta["action_id"]].update(status="errored", completed_at=_now())
            return
        if self._activation_due(meta):
            self._activate(droplet)

    def _activation_due(self, meta: dict[str, Any]) -> bool:
        """Whether a new resource (droplet, load balancer) is old or polled enough to be active."""
        config = self.config
        old_enough = (
            config.active_after_seconds is not None
            and time.monotonic() - meta["created"] >= config.active_after_seconds
        )
        polled_enough = (
            config.active_after_polls is not None and meta["polls"] >= config.active_after_polls
        )
        return old_enough or polled_enough

    def _list_droplets(self, query: dict[str, list[str]], **_: Any) -> Response:
        droplets = sorted(self.droplets.values(), key=lambda d: d["id"])
        tag = query.get("tag_name", [None])[0]
        name = query.get("name", [None])[0]
        if tag is not None:
            droplets = [d for d in droplets if tag in d["tags"]]
        if name is not None:
            droplets = [d for d in droplets if d["name"] == name]
        for droplet in droplets:
            self._advance(droplet)
        return self._page("droplets", droplets, "/v2/droplets", query)

    def _create_droplet(self, body: dict[str, Any], **_: Any) -> Response:
        names = body.get("names") or ([body["name"]] if body.get("name") else [])
        if not names:
            return _error(422, "unprocessable_entity", "Name is required.")
        for name in names:
            if not HOSTNAME_RE.match(str(name)):
                return _error(422, "unprocessable_entity", f"{name} is not a valid hostname.")
        region = body.get("region")
        size = body.get("size")
        image = str(body.get("image") or "")
        if region not in self.config.regions or not self.config.regions[region]["available"]:
            return _error(
                422, "unprocessable_entity", "You specified an invalid region for Droplet creation."
            )
        if size not in self.config.sizes or region not in self.config.sizes[size]["regions"]:
            return _error(
                422, "unprocessable_entity", "You specified an invalid size for Droplet creation."
            )
        if self._find_image(image) is None:
            return _error(
                422, "unprocessable_entity", "You specified an invalid image for Droplet creation."
            )
        vpc_uuid = body.get("vpc_uuid")
        if vpc_uuid:
            vpc = self.vpcs.get(vpc_uuid)
            if vpc is None or vpc["region"] != region:
                return _error(
                    422,
                    "unprocessable_entity",
                    "The VPC is invalid or not in the Droplet's region.",
                )
        keys = body.get("ssh_keys") or []
        for key in keys:
            if self._find_key(str(key)) is None:
                return _error(
                    422, "unprocessable_entity", f"SSH key {key} does not exist on this account."
                )
        tags = body.get("tags") or []
        for tag in tags:
            if not TAG_RE.match(str(tag)):
                return _error(422, "unprocessable_entity", f"Tag {tag} is invalid.")
        created = [self._new_droplet(n, size, image, region, vpc_uuid, tags, keys) for n in names]
        self.droplets_created += len(created)
        links = {
            "actions": [
                {
                    "id": self._droplet_meta[d["id"]]["action_id"],
                    "rel": "create",
                    "href": f"http://127.0.0.1:{self.port}/v2/actions/"
                    f"{self._droplet_meta[d['id']]['action_id']}",
                }
                for d in created
            ]
        }
        if "names" in body:
            return 202, {"droplets": copy.deepcopy(created), "links": links}, {}
        return 202, {"droplet": copy.deepcopy(created[0]), "links": links}, {}

    def _get_droplet(self, droplet_id: str, **_: Any) -> Response:
        droplet = self.droplets.get(int(droplet_id))
        if droplet is None:
            return _error(404, "not_found", "The resource you were accessing could not be found.")
        self._advance(droplet)
        return 200, {"droplet": copy.deepcopy(droplet)}, {}

    def _delete_droplet(self, droplet_id: str, **_: Any) -> Response:
        droplet = self.droplets.pop(int(droplet_id), None)
        if droplet is None:
            return _error(404, "not_found", "The resource you were accessing could not be found.")
        return 204, None, {}

    def _get_action(self, action_id: str, **_: Any) -> Response:
        action = self.actions.get(int(action_id))
        if action is None:
            return _error(404, "not_found", "The resource you were accessing could not be found.")
        droplet = self.droplets.get(action["resource_id"])
        if droplet is not None:
            self._advance(droplet)
        return 200, {"action": copy.deepcopy(action)}, {}

    def _get_droplet_action(self, droplet_id: str, action_id: str, **_: Any) -> Response:
        action = self.actions.get(int(action_id))
        if action is None or action["resource_id"] != int(droplet_id):
            return _error(404, "not_found", "The resource you were accessing could not be found.")
        return self._get_action(action_id)

    # -- VPCs ---------------------------------------------------------------

    def _list_vpcs(self, query: dict[str, list[str]], **_: Any) -> Response:
        return self._page("vpcs", [self._public(v) for v in self.vpcs.values()], "/v2/vpcs", query)

    @staticmethod
    def _public(item: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in item.items() if not k.startswith("_")}

    def _create_vpc(self, body: dict[str, Any], **_: Any) -> Response:
        name = body.get("name")
        region = body.get("region")
        if not name or not HOSTNAME_RE.match(str(name)):
            return _error(422, "unprocessable_entity", "name is invalid")
        if any(v["name"] == name for v in self.vpcs.values()):
            return _error(422, "unprocessable_entity", "name is already in use")
        if region not in self.config.regions:
            return _error(422, "unprocessable_entity", "region is invalid")
        ip_range = body.get("ip_range")
        if ip_range:
            try:
                ipaddress.ip_network(ip_range)
            except ValueError:
                return _error(422, "unprocessable_entity", "ip_range is invalid")
        else:
            # Loopback ranges only: nothing that follows a fake address leaves the machine.
            ip_range = f"127.16.{next(self._vpc_ranges) * 16}.0/20"
        vpc_id = str(uuid.uuid4())
        vpc = {
            "id": vpc_id,
            "urn": f"do:vpc:{vpc_id}",
            "name": name,
            "description": body.get("description") or "",
            "region": region,
            "ip_range": ip_range,
            "default": False,
            "created_at": _now(),
        }
        self.vpcs[vpc_id] = vpc
        return 201, {"vpc": copy.deepcopy(vpc)}, {}

    def _get_vpc(self, vpc_id: str, **_: Any) -> Response:
        vpc = self.vpcs.get(vpc_id)
        if vpc is None:
            return _error(404, "not_found", "The resource you were accessing could not be found.")
        return 200, {"vpc": self._public(vpc)}, {}

    def _delete_vpc(self, vpc_id: str, **_: Any) -> Response:
        if vpc_id not in self.vpcs:
            return _error(404, "not_found", "The resource you were accessing could not be found.")
        members = [*self.droplets.values(), *self.load_balancers.values()]
        if any(m.get("vpc_uuid") == vpc_id for m in members):
            return _error(403, "forbidden", "Can not delete VPC with members")
        del self.vpcs[vpc_id]
        return 204, None, {}

    # -- SSH keys -----------------------------------------------------------

    @staticmethod
    def _fingerprint(public_key: str) -> str | None:
        parts = public_key.split()
        if len(parts) < 2:
            return None
        try:
            blob = base64.b64decode(parts[1], validate=True)
        except ValueError:
            return None
        digest = hashlib.md5(blob, usedforsecurity=False).hexdigest()
        return ":".join(digest[i : i + 2] for i in range(0, 32, 2))

    def _find_key(self, ref: str) -> dict[str, Any] | None:
        for key in self.ssh_keys.values():
            if ref in (str(key["id"]), key["fingerprint"]):
                return key
        return None

    def _list_keys(self, query: dict[str, list[str]], **_: Any) -> Response:
        return self._page("ssh_keys", list(self.ssh_keys.values()), "/v2/account/keys", query)

    def _create_key(self, body: dict[str, Any], **_: Any) -> Response:
        public_key = str(body.get("public_key") or "")
        fingerprint = self._fingerprint(public_key)
        if not body.get("name") or fingerprint is None:
            return _error(
                422,
                "unprocessable_entity",
                "Key invalid, key should be of the form 'type key [comment]'",
            )
        if self._find_key(fingerprint) is not None:
            return _error(422, "unprocessable_entity", "SSH Key is already in use on your account")
        key_id = next(self._ids)
        key = {
            "id": key_id,
            "fingerprint": fingerprint,
            "public_key": public_key,
            "name": body["name"],
        }
        self.ssh_keys[key_id] = key
        return 201, {"ssh_key": copy.deepcopy(key)}, {}

    def _get_key(self, ref: str, **_: Any) -> Response:
        key = self._find_key(ref)
        if key is None:
            return _error(404, "not_found", "The resource you were accessing could not be found.")
        return 200, {"ssh_key": copy.deepcopy(key)}, {}

    def _delete_key(self, ref: str, **_: Any) -> Response:
        key = self._find_key(ref)
        if key is None:
            return _error(404, "not_found", "The resource you were accessing could not be found.")
        del self.ssh_keys[key["id"]]
        return 204, None, {}

    # -- tags ---------------------------------------------------------------

    def _tag_view(self, name: str) -> dict[str, Any]:
        count = sum(1 for d in self.droplets.values() if name in d["tags"])
        return {"name": name, "resources": {"count": count, "droplets": {"count": count}}}

    def _list_tags(self, query: dict[str, list[str]], **_: Any) -> Response:
        return self._page("tags", [self._tag_view(n) for n in sorted(self.tags)], "/v2/tags", query)

    def _create_tag(self, body: dict[str, Any], **_: Any) -> Response:
        name = str(body.get("name") or "")
        if not TAG_RE.match(name):
            return _error(422, "unprocessable_entity", f"Tag name {name!r} is invalid.")
        self.tags.setdefault(name, {"name": name})
        return 201, {"tag": self._tag_view(name)}, {}

    def _get_tag(self, name: str, **_: Any) -> Response:
        if name not in self.tags:
            return _error(404, "not_found", "The resource you were accessing could not be found.")
        return 200, {"tag": self._tag_view(name)}, {}

    def _delete_tag(self, name: str, **_: Any) -> Response:
        if name not in self.tags:
            return _error(404, "not_found", "The resource you were accessing could not be found.")
        del self.tags[name]
        for droplet in self.droplets.values():
            if name in droplet["tags"]:
                droplet["tags"].remove(name)
        for firewall in self.firewalls.values():
            if name in firewall["tags"]:
                firewall["tags"].remove(name)
        return 204, None, {}

    def _tagged_droplets(self, body: dict[str, Any]) -> list[dict[str, Any]] | Response:
        found = []
        for resource in body.get("resources") or []:
            if resource.get("resource_type") != "droplet":
                return _error(422, "unprocessable_entity", "only droplets can be tagged here")
            droplet = self.droplets.get(int(resource.get("resource_id", 0)))
            if droplet is None:
                return _error(
                    422,
                    "unprocessable_entity",
                    f"droplet {resource.get('resource_id')} does not exist",
                )
            found.append(droplet)
        return found

    def _tag_resources(self, name: str, body: dict[str, Any], **_: Any) -> Response:
        if name not in self.tags:
            return _error(404, "not_found", "The resource you were accessing could not be found.")
        found = self._tagged_droplets(body)
        if isinstance(found, tuple):
            return found
        for droplet in found:
            if name not in droplet["tags"]:
                droplet["tags"].append(name)
        return 204, None, {}

    def _untag_resources(self, name: str, body: dict[str, Any], **_: Any) -> Response:
        found = self._tagged_droplets(body)
        if isinstance(found, tuple):
            return found
        for droplet in found:
            if name in droplet["tags"]:
                droplet["tags"].remove(name)
        return 204, None, {}

    # -- firewalls ----------------------------------------------------------

    def _check_firewall(self, body: dict[str, Any]) -> Response | None:
        if not body.get("name"):
            return _error(422, "unprocessable_entity", "name is required")
        for tag in body.get("tags") or []:
            if tag not in self.tags:
                return _error(422, "unprocessable_entity", f"tag {tag} does not exist")
        for key, side in (("inbound_rules", "sources"), ("outbound_rules", "destinations")):
            for rule in body.get(key) or []:
                if rule.get("protocol") not in ("tcp", "udp", "icmp"):
                    return _error(422, "unprocessable_entity", "protocol is invalid")
                if rule.get("protocol") != "icmp" and not rule.get("ports"):
                    return _error(422, "unprocessable_entity", "ports is required")
                for tag in (rule.get(side) or {}).get("tags") or []:
                    if tag not in self.tags:
                        return _error(422, "unprocessable_entity", f"tag {tag} does not exist")
                for uid in (rule.get(side) or {}).get("load_balancer_uids") or []:
                    if uid not in self.load_balancers:
                        return _error(
                            422, "unprocessable_entity", f"load balancer {uid} does not exist"
                        )
        return None

    def _firewall_from(self, firewall_id: str, body: dict[str, Any]) -> dict[str, Any]:
        def clean(rules: list[dict[str, Any]], side: str) -> list[dict[str, Any]]:
            out = []
            for rule in rules:
                target = rule.get(side) or {}
                out.append(
                    {
                        "protocol": rule["protocol"],
                        "ports": "0" if rule.get("ports") in (None, "", "all") else rule["ports"],
                        side: {k: v for k, v in target.items() if v},
                    }
                )
            return out

        return {
            "id": firewall_id,
            "name": body["name"],
            "status": "succeeded",
            "inbound_rules": clean(body.get("inbound_rules") or [], "sources"),
            "outbound_rules": clean(body.get("outbound_rules") or [], "destinations"),
            "created_at": self.firewalls.get(firewall_id, {}).get("created_at", _now()),
            "droplet_ids": list(body.get("droplet_ids") or []),
            "tags": list(body.get("tags") or []),
            "pending_changes": [],
        }

    def _list_firewalls(self, query: dict[str, list[str]], **_: Any) -> Response:
        return self._page("firewalls", list(self.firewalls.values()), "/v2/firewalls", query)

    def _create_firewall(self, body: dict[str, Any], **_: Any) -> Response:
        problem = self._check_firewall(body)
        if problem is not None:
            return problem
        firewall_id = str(uuid.uuid4())
        self.firewalls[firewall_id] = self._firewall_from(firewall_id, body)
        return 202, {"firewall": copy.deepcopy(self.firewalls[firewall_id])}, {}

    def _get_firewall(self, firewall_id: str, **_: Any) -> Response:
        if firewall_id not in self.firewalls:
            return _error(404, "not_found", "The resource you were accessing could not be found.")
        return 200, {"firewall": copy.deepcopy(self.firewalls[firewall_id])}, {}

    def _update_firewall(self, firewall_id: str, body: dict[str, Any], **_: Any) -> Response:
        if firewall_id not in self.firewalls:
            return _error(404, "not_found", "The resource you were accessing could not be found.")
        problem = self._check_firewall(body)
        if problem is not None:
            return problem
        self.firewalls[firewall_id] = self._firewall_from(firewall_id, body)
        return 200, {"firewall": copy.deepcopy(self.firewalls[firewall_id])}, {}

    def _delete_firewall(self, firewall_id: str, **_: Any) -> Response:
        if self.firewalls.pop(firewall_id, None) is None:
            return _error(404, "not_found", "The resource you were accessing could not be found.")
        return 204, None, {}


class _Handler(BaseHTTPRequestHandler):
    """Turns HTTP requests into :meth:`FakeDigitalOcean.handle` calls."""

    fake: FakeDigitalOcean
    protocol_version = "HTTP/1.1"
    server_version = "fake-digitalocean/1"

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, body, extra = self.fake.handle(self.command, self.path, headers, raw)
        payload = b"" if body is None else json.dumps(body).encode()
        try:
            self.send_response(status)
            if body is not None:
                self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("RateLimit-Limit", "5000")
            self.send_header("RateLimit-Remaining", "4999")
            self.send_header("RateLimit-Reset", str(int(time.time()) + 60))
            for key, value in extra.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away (an interrupted run): the work is done anyway

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet; :attr:`FakeDigitalOcean.requests` records every request."""
