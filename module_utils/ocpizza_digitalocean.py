"""DigitalOcean code shared by the OC Pizza module and inventory plugin.

``library/digitalocean_environment.py`` (the module) and
``inventory_plugins/ocpizza_digitalocean.py`` (the inventory plugin) both talk
to DigitalOcean through python-digitalocean, as the project's design card asks.
That library leaves three gaps, which this file closes once for both:

* It sets no request timeout unless an environment variable asks for one,
  retries nothing (a 429 rate limit fails the call), and reports an HTTP error
  as a bare message without its status code. :class:`_Transport` is mixed into
  the library's own resource classes and replaces their single request method,
  so every call, including each page of a paginated listing, has a timeout,
  is retried with backoff on 429 (and on transient failures of requests that
  are safe to repeat), and fails with a :class:`DigitalOceanError` that knows
  its status code.
* It does not wait for a droplet to become active. :class:`EnvironmentReconciler`
  polls until every droplet is active, with a deadline.
* It creates a second droplet when called twice. The reconciler identifies
  every resource by name and tags, reads what exists first, and creates only
  what is missing, so a rerun after an interrupted run finishes the job.

Naming, shared with the inventory plugin so both agree:

* droplets are named ``<project>-<environment>-<prefix><n>`` (``ocpizza-staging-db1``);
* every droplet carries the tags ``<project>`` (managed by this project),
  ``env:<environment>``, ``group:<inventory group>`` and the selector tag
  ``<project>-<environment>-<group>`` that the group's cloud firewall targets
  and that other groups' firewall rules name as a source;
* the VPC is ``<project>-<environment>`` and the firewalls are
  ``<project>-<environment>-<group>``.

This file imports nothing from Ansible, so the inventory plugin can load it on
the controller and unit tests can import it directly.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import re
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

try:
    import digitalocean
    import requests
    from digitalocean.baseapi import BaseAPI as _LibraryBaseAPI
    from digitalocean.Firewall import InboundRule, OutboundRule
except ImportError:  # reported by the module and the plugin, which need it
    HAS_DIGITALOCEAN = False

    class _LibraryBaseAPI:  # type: ignore[no-redef]
        """Stand-in so this file can be imported without python-digitalocean."""

else:
    HAS_DIGITALOCEAN = True

DEFAULT_API_URL = "https://api.digitalocean.com/v2/"
# Environment variables that may hold the API token, in the order they are read.
TOKEN_ENV_VARS = ("DIGITALOCEAN_TOKEN", "DIGITALOCEAN_ACCESS_TOKEN", "DO_API_TOKEN")
API_URL_ENV_VAR = "DIGITALOCEAN_END_POINT"

ENV_TAG_PREFIX = "env:"
GROUP_TAG_PREFIX = "group:"

# Environment and project names end up in droplet names (host names) and tags.
NAME_PATTERN = re.compile(r"^[a-z](?:[a-z0-9-]{0,18}[a-z0-9])?$")
GROUP_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,30}$")
PREFIX_PATTERN = re.compile(r"^[a-z](?:[a-z0-9-]{0,14}[a-z0-9])?$")
TAG_PATTERN = re.compile(r"^[A-Za-z0-9:_-]{1,255}$")
PORTS_PATTERN = re.compile(r"^(all|\d{1,5}(-\d{1,5})?)$")
PROTOCOLS = ("tcp", "udp", "icmp")

# What every droplet may send: DNS, package mirrors, the app's web services.
ALLOW_ALL_OUTBOUND: tuple[dict[str, Any], ...] = tuple(
    {
        "protocol": protocol,
        "ports": "all" if protocol != "icmp" else "",
        "destinations": {"addresses": ["0.0.0.0/0", "::/0"]},
    }
    for protocol in PROTOCOLS
)


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------


class ProvisioningError(Exception):
    """Base class of every error this file raises; ``str()`` is for operators."""


class SpecError(ProvisioningError):
    """The requested environment is invalid (bad name, unknown size, image or region)."""


class DigitalOceanError(ProvisioningError):
    """An API call failed; carries the HTTP status and DigitalOcean's error id."""

    def __init__(
        self,
        message: str,
        status: int | None = None,
        error_id: str | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        self.status = status
        self.error_id = error_id
        self.method = method
        self.path = path
        self.api_message = message
        super().__init__(self._describe())

    def _describe(self) -> str:
        where = f"{self.method} {self.path}" if self.method and self.path else "the API"
        if self.status == 401:
            return (
                "DigitalOcean rejected the API token (HTTP 401 Unauthorized: "
                f"{self.api_message}). Check DIGITALOCEAN_TOKEN or vault_digitalocean_token."
            )
        if self.status == 403:
            return (
                f"DigitalOcean refused {where} (HTTP 403 Forbidden: {self.api_message}). "
                "The token may lack the write scope."
            )
        if self.status == 429:
            return (
                f"DigitalOcean kept rate-limiting {where} (HTTP 429: {self.api_message}) "
                "after every retry; wait for the limit to reset and run again."
            )
        if self.status is None:
            return f"DigitalOcean could not be reached for {where}: {self.api_message}"
        label = f"HTTP {self.status}" + (f" {self.error_id}" if self.error_id else "")
        return f"DigitalOcean refused {where} ({label}): {self.api_message}"


class ProvisioningTimeout(ProvisioningError):
    """Droplets did not become active (or go away) before the deadline."""


def _api_path(url: str, end_point: str) -> str:
    """Return ``url`` relative to the API end point, for messages."""
    path = url[len(end_point) :] if url.startswith(end_point) else url
    return "/" + path.split("?", 1)[0].lstrip("/")


# --------------------------------------------------------------------------
# Transport: timeouts, retries and status-aware errors for python-digitalocean
# --------------------------------------------------------------------------


@dataclass
class TransportSettings:
    """How every API request is sent; shared by all objects of one client."""

    # Seconds before a request without an answer fails.
    timeout: float = 30.0
    # How many times one request is repeated after a 429 or a transient failure.
    max_retries: int = 5
    # First backoff delay in seconds, doubled on every retry...
    backoff_base: float = 1.0
    # ...and never longer than this, whatever Retry-After says.
    backoff_max: float = 60.0
    # Injected so tests need not sleep.
    sleep: Callable[[float], None] = time.sleep
    # Statistics, reported by the module: retries done, and why.
    retries: int = 0
    rate_limited: int = 0

    def delay(self, attempt: int, response: Any = None) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based)."""
        if response is not None:
            hinted = _retry_after(response.headers)
            if hinted is not None:
                return min(max(hinted, 0.0), self.backoff_max)
        return min(self.backoff_base * (2**attempt), self.backoff_max)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Read a server's wait hint: ``Retry-After`` or DigitalOcean's ``RateLimit-Reset``."""
    value = headers.get("Retry-After")
    if value:
        try:
            return float(value)
        except ValueError:
            try:
                return parsedate_to_datetime(value).timestamp() - time.time()
            except (TypeError, ValueError):
                pass
    reset = headers.get("RateLimit-Reset") or headers.get("Ratelimit-Reset")
    if reset:
        try:
            return float(reset) - time.time()
        except ValueError:
            return None
    return None


class _Transport(_LibraryBaseAPI):
    """Mixin for python-digitalocean resource classes: a safer request method.

    ``BaseAPI.get_data`` (and its pagination loop) sends every request through
    the private ``_BaseAPI__perform_request``; overriding it here gives every
    call of the subclasses below a timeout, retries and typed errors. The
    settings arrive through the library's own constructor, which stores any
    keyword argument as an attribute (``_ocpizza_transport=...``).
    """

    _ocpizza_transport: TransportSettings

    def get_timeout(self) -> float:
        """Always send a timeout (the library sends none unless an env var is set)."""
        return self._ocpizza_transport.timeout

    def _BaseAPI__perform_request(
        self, url: str, type: str = "GET", params: dict[str, Any] | None = None
    ) -> Any:
        """Send one request like the library does, with retries; raise on failure."""
        settings = self._ocpizza_transport
        path = _api_path(url, self.end_point)
        attempt = 0
        while True:
            try:
                response = _LibraryBaseAPI._BaseAPI__perform_request(  # type: ignore[attr-defined]
                    self, url, type, params
                )
            except (requests.Timeout, requests.ConnectionError) as exc:
                # A POST may have been carried out even though no answer came:
                # never repeat it blindly (the caller re-reads and decides).
                if type == "POST" or attempt >= settings.max_retries:
                    raise DigitalOceanError(
                        f"{exc.__class__.__name__}: {exc}", method=type, path=path
                    ) from exc
                settings.sleep(settings.delay(attempt))
                settings.retries += 1
                attempt += 1
                continue
            status = response.status_code
            retryable = status == 429 or (status >= 500 and type != "POST")
            if retryable and attempt < settings.max_retries:
                if status == 429:
                    settings.rate_limited += 1
                settings.sleep(settings.delay(attempt, response))
                settings.retries += 1
                attempt += 1
                continue
            if not response.ok:
                raise _error_from_response(response, type, path)
            return response


def _error_from_response(response: Any, method: str, path: str) -> DigitalOceanError:
    """Build the error for a failed response, keeping DigitalOcean's id and message."""
    error_id: str | None = None
    message = response.reason or "error"
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        error_id = body.get("id")
        message = body.get("message") or message
    return DigitalOceanError(str(message), response.status_code, error_id, method, path)


if HAS_DIGITALOCEAN:

    class Manager(_Transport, digitalocean.Manager):
        """python-digitalocean's Manager with timeouts, retries and typed errors."""

    class Droplet(_Transport, digitalocean.Droplet):
        """python-digitalocean's Droplet with timeouts, retries and typed errors."""

    class Action(_Transport, digitalocean.Action):
        """python-digitalocean's Action with timeouts, retries and typed errors."""

    class VPC(_Transport, digitalocean.VPC):
        """python-digitalocean's VPC with timeouts, retries and typed errors."""

    class SSHKey(_Transport, digitalocean.SSHKey):
        """python-digitalocean's SSHKey with timeouts, retries and typed errors."""

    class Tag(_Transport, digitalocean.Tag):
        """python-digitalocean's Tag with timeouts, retries and typed errors."""

    class Firewall(_Transport, digitalocean.Firewall):
        """python-digitalocean's Firewall with timeouts, retries and typed errors."""


# --------------------------------------------------------------------------
# Client: the few calls the module and the plugin make, returning plain data
# --------------------------------------------------------------------------


@dataclass
class DropletInfo:
    """What the module and the inventory plugin need to know about a droplet."""

    id: int
    name: str
    status: str
    tags: list[str]
    size_slug: str
    region: str
    image: str
    vpc_uuid: str | None
    public_ipv4: str | None
    private_ipv4: str | None
    public_ipv6: str | None = None
    created_at: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable copy."""
        return asdict(self)


def _slug(value: Any) -> str:
    """Return the slug of a region/image/size that the API gives as a dict or a string."""
    if isinstance(value, dict):
        return str(value.get("slug") or value.get("id") or value.get("name") or "")
    return "" if value is None else str(value)


def droplet_info(droplet: Any) -> DropletInfo:
    """Convert a python-digitalocean Droplet (or its JSON) into :class:`DropletInfo`."""
    data = droplet if isinstance(droplet, dict) else vars(droplet)
    public4 = private4 = public6 = None
    networks = data.get("networks") or {}
    for net in networks.get("v4") or []:
        if net.get("type") == "public" and public4 is None:
            public4 = net.get("ip_address")
        elif net.get("type") == "private" and private4 is None:
            private4 = net.get("ip_address")
    for net in networks.get("v6") or []:
        if net.get("type") == "public" and public6 is None:
            public6 = net.get("ip_address")
    return DropletInfo(
        id=int(data["id"]),
        name=str(data.get("name")),
        status=str(data.get("status")),
        tags=list(data.get("tags") or []),
        size_slug=str(data.get("size_slug") or _slug(data.get("size"))),
        region=_slug(data.get("region")),
        image=_slug(data.get("image")),
        vpc_uuid=data.get("vpc_uuid"),
        public_ipv4=public4,
        private_ipv4=private4,
        public_ipv6=public6,
        created_at=data.get("created_at"),
    )


class DigitalOceanClient:
    """The API calls of this project, on python-digitalocean, returning plain data."""

    def __init__(
        self,
        token: str,
        api_url: str | None = None,
        settings: TransportSettings | None = None,
    ) -> None:
        if not HAS_DIGITALOCEAN:
            raise ProvisioningError(
                "python-digitalocean is not installed in the Python that runs Ansible "
                "on the control node (pip install -r requirements.txt)."
            )
        if not token:
            raise ProvisioningError(
                "No DigitalOcean API token: set DIGITALOCEAN_TOKEN (or vault_digitalocean_token)."
            )
        self.token = token
        self.api_url = api_url or DEFAULT_API_URL
        if not self.api_url.endswith("/"):
            self.api_url += "/"
        self.settings = settings or TransportSettings()

    def _new(self, cls: type, **attributes: Any) -> Any:
        return cls(
            token=self.token,
            end_point=self.api_url,
            _ocpizza_transport=self.settings,
            **attributes,
        )

    @property
    def manager(self) -> Any:
        """A transport-enabled python-digitalocean Manager."""
        return self._new(Manager)

    # -- reading ------------------------------------------------------------

    def account(self) -> dict[str, Any]:
        """Return the account (a cheap call that checks the token)."""
        return dict(self.manager.get_data("account")["account"])

    def sizes(self) -> dict[str, dict[str, Any]]:
        """Return every droplet size by slug (with ``price_monthly`` and ``regions``)."""
        return {size["slug"]: size for size in self.manager.get_data("sizes")["sizes"]}

    def regions(self) -> dict[str, dict[str, Any]]:
        """Return every region by slug."""
        return {region["slug"]: region for region in self.manager.get_data("regions")["regions"]}

    def image(self, slug: str) -> dict[str, Any] | None:
        """Return the image with this slug (or numeric id), or None when unknown."""
        try:
            return dict(self.manager.get_data(f"images/{slug}")["image"])
        except DigitalOceanError as exc:
            if exc.status == 404:
                return None
            raise

    def droplets(self, tag: str) -> list[DropletInfo]:
        """Return every droplet that carries ``tag`` (all pages)."""
        return [droplet_info(d) for d in self.manager.get_all_droplets(tag_name=tag)]

    def action(self, action_id: int) -> dict[str, Any]:
        """Return an action (``status`` is in-progress, completed or errored)."""
        action = self._new(Action, id=action_id)
        action.load_directly()
        return {"id": action.id, "status": action.status, "type": action.type}

    def vpcs(self) -> list[dict[str, Any]]:
        """Return every VPC of the account."""
        return list(self.manager.get_data("vpcs")["vpcs"])

    def ssh_keys(self) -> list[dict[str, Any]]:
        """Return every SSH key of the account."""
        return list(self.manager.get_data("account/keys")["ssh_keys"])

    def tag_names(self) -> set[str]:
        """Return the names of every tag of the account."""
        return {tag["name"] for tag in self.manager.get_data("tags")["tags"]}

    def firewalls(self) -> list[dict[str, Any]]:
        """Return every cloud firewall of the account."""
        return list(self.manager.get_data("firewalls")["firewalls"])

    # -- writing ------------------------------------------------------------

    def create_tag(self, name: str) -> None:
        """Create a tag."""
        self._new(Tag, name=name).create()

    def tag_droplets(self, tag: str, droplet_ids: Iterable[int]) -> None:
        """Add ``tag`` to droplets."""
        self._new(Tag, name=tag).add_droplets([str(i) for i in droplet_ids])

    def delete_tag(self, name: str) -> None:
        """Delete a tag (DigitalOcean removes it from its resources); gone counts as deleted."""
        try:
            self._new(Tag, name=name).delete()
        except DigitalOceanError as exc:
            if exc.status != 404:
                raise

    def create_vpc(
        self, name: str, region: str, ip_range: str | None, description: str
    ) -> dict[str, Any]:
        """Create a VPC and return it."""
        vpc = self._new(VPC, name=name, region=region, ip_range=ip_range, description=description)
        vpc.create()
        return {"id": vpc.id, "name": vpc.name, "region": vpc.region, "ip_range": vpc.ip_range}

    def delete_vpc(self, vpc_id: str) -> None:
        """Delete a VPC (DigitalOcean refuses while droplets are still in it)."""
        self._new(VPC, id=vpc_id).destroy()

    def create_ssh_key(self, name: str, public_key: str) -> int:
        """Upload a public key and return its id."""
        key = self._new(SSHKey, name=name, public_key=public_key)
        key.create()
        return int(key.id)

    def create_droplet(
        self,
        *,
        name: str,
        region: str,
        size: str,
        image: str,
        vpc_uuid: str | None,
        ssh_key_ids: list[int],
        tags: list[str],
        monitoring: bool,
        ipv6: bool,
        backups: bool,
        user_data: str | None = None,
    ) -> tuple[int, int | None]:
        """Create one droplet; return its id and the id of its create action."""
        droplet = self._new(
            Droplet,
            name=name,
            region=region,
            size_slug=size,
            image=image,
            vpc_uuid=vpc_uuid,
            ssh_keys=list(ssh_key_ids),
            tags=list(tags),
            monitoring=monitoring,
            ipv6=ipv6,
            backups=backups,
            user_data=user_data,
        )
        droplet.create()
        action_id = droplet.action_ids[0] if droplet.action_ids else None
        return int(droplet.id), action_id

    def delete_droplet(self, droplet_id: int) -> None:
        """Delete a droplet; a droplet that is already gone counts as deleted."""
        try:
            self._new(Droplet, id=droplet_id).destroy()
        except DigitalOceanError as exc:
            if exc.status != 404:
                raise

    def create_firewall(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create a cloud firewall from a body like :func:`desired_firewall` returns."""
        firewall = self._new(
            Firewall,
            name=body["name"],
            inbound_rules=[InboundRule(**rule) for rule in body["inbound_rules"]],
            outbound_rules=[OutboundRule(**rule) for rule in body["outbound_rules"]],
            tags=list(body["tags"]),
            droplet_ids=list(body.get("droplet_ids") or []),
        )
        with warnings.catch_warnings():
            # The library encodes the rules with jsonpickle, which warns about a
            # future default that does not change the JSON it produces here.
            warnings.simplefilter("ignore", DeprecationWarning)
            firewall.create()
        return {"id": firewall.id, "name": firewall.name}

    def update_firewall(self, firewall_id: str, body: Mapping[str, Any]) -> None:
        """Replace a firewall's rules and targets (the library has no call for it)."""
        self._new(Firewall, id=firewall_id).get_data(
            f"firewalls/{firewall_id}", type="PUT", params=dict(body)
        )

    def delete_firewall(self, firewall_id: str) -> None:
        """Delete a cloud firewall; one that is already gone counts as deleted."""
        try:
            self._new(Firewall, id=firewall_id).destroy()
        except DigitalOceanError as exc:
            if exc.status != 404:
                raise


# --------------------------------------------------------------------------
# What an environment should look like
# --------------------------------------------------------------------------


def environment_tag(environment: str) -> str:
    """Tag that marks every droplet of an environment (``env:staging``)."""
    return f"{ENV_TAG_PREFIX}{environment}"


def group_tag(group: str) -> str:
    """Tag that puts a droplet in an inventory group (``group:dbservers``)."""
    return f"{GROUP_TAG_PREFIX}{group}"


def selector_tag(project: str, environment: str, group: str) -> str:
    """Tag that a group's firewall targets and other rules name (``ocpizza-staging-dbservers``)."""
    return f"{project}-{environment}-{group}"


def ssh_fingerprint(public_key: str) -> str:
    """Return the MD5 fingerprint DigitalOcean shows for an OpenSSH public key."""
    parts = public_key.strip().split()
    if len(parts) < 2:
        raise SpecError("an SSH public key must look like 'ssh-ed25519 AAAA... comment'")
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SpecError(f"the SSH public key {parts[0]} {parts[1][:12]}... is not base64") from exc
    digest = hashlib.md5(blob, usedforsecurity=False).hexdigest()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def _as_list(value: Any) -> list[Any]:
    """A list from a list, a single value, or nothing."""
    if value is None:
        return []
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        return [value]
    return list(value)


@dataclass(frozen=True)
class FirewallRule:
    """One inbound rule: a protocol and ports, from addresses and/or other groups."""

    protocol: str
    ports: str
    addresses: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> FirewallRule:
        """Build a rule from ``{protocol, ports, sources: {addresses, groups}}``."""
        protocol = str(data.get("protocol", "tcp")).lower()
        if protocol not in PROTOCOLS:
            raise SpecError(f"{where}: protocol must be one of {', '.join(PROTOCOLS)}")
        ports = "" if protocol == "icmp" else str(data.get("ports", "")).strip()
        if protocol != "icmp" and not PORTS_PATTERN.match(ports):
            raise SpecError(f"{where}: ports must be a port, a range like 8000-8010, or all")
        sources = data.get("sources") or {}
        addresses = tuple(str(a) for a in _as_list(sources.get("addresses")))
        groups = tuple(str(g) for g in _as_list(sources.get("groups")))
        for address in addresses:
            try:
                ipaddress.ip_network(address, strict=False)
            except ValueError as exc:
                raise SpecError(f"{where}: {address!r} is not an address or CIDR") from exc
        if not addresses and not groups:
            raise SpecError(f"{where}: sources needs addresses and/or groups")
        return cls(protocol, ports, addresses, groups)


@dataclass
class GroupSpec:
    """The droplets of one inventory group."""

    name: str
    hostname_prefix: str
    size: str
    image: str
    count: int = 1
    firewall_inbound: list[FirewallRule] = field(default_factory=list)

    def droplet_names(self, project: str, environment: str) -> list[str]:
        """Names of this group's droplets, ``<project>-<env>-<prefix><n>``."""
        return [
            f"{project}-{environment}-{self.hostname_prefix}{n}" for n in range(1, self.count + 1)
        ]


@dataclass
class SSHKeySpec:
    """A public key to install on every droplet."""

    name: str
    public_key: str

    @property
    def fingerprint(self) -> str:
        """The key's MD5 fingerprint, as DigitalOcean reports it."""
        return ssh_fingerprint(self.public_key)


@dataclass
class EnvironmentSpec:
    """Everything the module is asked to make exist (or make absent)."""

    project: str
    environment: str
    region: str
    groups: list[GroupSpec]
    vpc_name: str = ""
    vpc_ip_range: str | None = None
    vpc_description: str = ""
    ssh_keys: list[SSHKeySpec] = field(default_factory=list)
    extra_tags: list[str] = field(default_factory=list)
    monitoring: bool = True
    ipv6: bool = False
    backups: bool = False
    user_data: str | None = None
    wait: bool = True
    wait_timeout: float = 600.0
    poll_interval: float = 5.0

    def __post_init__(self) -> None:
        if not self.vpc_name:
            self.vpc_name = f"{self.project}-{self.environment}"

    # -- derived names ------------------------------------------------------

    @property
    def environment_tag(self) -> str:
        """``env:<environment>``."""
        return environment_tag(self.environment)

    @property
    def name_prefix(self) -> str:
        """Prefix of every droplet and firewall name of the environment."""
        return f"{self.project}-{self.environment}-"

    def owns(self, name: str) -> bool:
        """True for ``<project>-<environment>-<group>``, the names of this environment's
        firewalls and selector tags, and not for those of an environment whose name
        merely starts the same (``staging-eu``): group names have no dash."""
        return name.startswith(self.name_prefix) and bool(
            GROUP_PATTERN.match(name[len(self.name_prefix) :])
        )

    def firewall_name(self, group: str) -> str:
        """Name of a group's cloud firewall."""
        return f"{self.project}-{self.environment}-{group}"

    def droplet_tags(self, group: GroupSpec) -> list[str]:
        """Every tag a droplet of ``group`` carries."""
        tags = [
            self.project,
            self.environment_tag,
            group_tag(group.name),
            selector_tag(self.project, self.environment, group.name),
            *self.extra_tags,
        ]
        return list(dict.fromkeys(tags))

    def all_tags(self) -> list[str]:
        """Every tag the environment uses."""
        tags: list[str] = []
        for group in self.groups:
            tags.extend(self.droplet_tags(group))
        return list(dict.fromkeys(tags))

    def desired_droplets(self) -> list[tuple[GroupSpec, str]]:
        """Every droplet the environment should have, as (group, name)."""
        return [
            (group, name)
            for group in self.groups
            for name in group.droplet_names(self.project, self.environment)
        ]

    def _name_problems(self) -> list[str]:
        problems = []
        for label, value in (("project", self.project), ("environment", self.environment)):
            if not NAME_PATTERN.match(value or ""):
                problems.append(
                    f"{label} {value!r} must be 1-20 lower-case letters, digits or dashes, "
                    "starting with a letter"
                )
        return problems

    def validate_names(self) -> None:
        """Refuse a project or environment name that would make invalid resource names."""
        problems = self._name_problems()
        if problems:
            raise SpecError("; ".join(problems))

    def validate(self) -> None:
        """Refuse names and values that would make invalid resources."""
        problems = self._name_problems()
        if not self.region:
            problems.append("region is empty")
        if not self.groups:
            problems.append("groups is empty: nothing to provision")
        names = [g.name for g in self.groups]
        prefixes = [g.hostname_prefix for g in self.groups]
        if len(set(names)) != len(names):
            problems.append(f"groups are listed twice: {names}")
        if len(set(prefixes)) != len(prefixes):
            problems.append(f"hostname prefixes must differ between groups: {prefixes}")
        for group in self.groups:
            if not GROUP_PATTERN.match(group.name):
                problems.append(f"group name {group.name!r} is not a valid inventory group name")
            if not PREFIX_PATTERN.match(group.hostname_prefix):
                problems.append(
                    f"group {group.name}: hostname_prefix {group.hostname_prefix!r} must be "
                    "lower-case letters, digits or dashes"
                )
            if group.count < 0:
                problems.append(f"group {group.name}: count must be 0 or more")
            if not group.size or not group.image:
                problems.append(f"group {group.name}: size and image are required")
            for rule in group.firewall_inbound:
                for other in rule.groups:
                    if other not in names:
                        problems.append(
                            f"group {group.name}: a firewall rule names the unknown group "
                            f"{other!r} (known: {', '.join(names)})"
                        )
        for tag in self.extra_tags:
            if not TAG_PATTERN.match(tag):
                problems.append(f"tag {tag!r} may hold only letters, digits, ':', '-' and '_'")
        for key in self.ssh_keys:
            try:
                ssh_fingerprint(key.public_key)
            except SpecError as exc:
                problems.append(f"ssh key {key.name}: {exc}")
        if self.wait_timeout <= 0 or self.poll_interval <= 0:
            problems.append("wait_timeout and poll_interval must be positive")
        if problems:
            raise SpecError("; ".join(problems))


def desired_firewall(spec: EnvironmentSpec, group: GroupSpec) -> dict[str, Any]:
    """Return the API body of a group's cloud firewall."""
    inbound = []
    for rule in group.firewall_inbound:
        inbound.append(
            {
                "protocol": rule.protocol,
                "ports": rule.ports,
                "sources": {
                    "addresses": list(rule.addresses),
                    "tags": [selector_tag(spec.project, spec.environment, g) for g in rule.groups],
                },
            }
        )
    return {
        "name": spec.firewall_name(group.name),
        "inbound_rules": inbound,
        "outbound_rules": [dict(rule) for rule in ALLOW_ALL_OUTBOUND],
        "tags": [selector_tag(spec.project, spec.environment, group.name)],
        "droplet_ids": [],
    }


def _normal_ports(protocol: str, ports: Any) -> str:
    if protocol == "icmp":
        return ""
    text = str(ports if ports is not None else "").strip()
    return "all" if text in ("", "0", "all") else text


def _normal_rules(rules: Iterable[Mapping[str, Any]], side: str) -> frozenset[tuple[Any, ...]]:
    """Rules as a set of comparable tuples (order and empty fields do not matter)."""
    normal = set()
    for rule in rules:
        protocol = str(rule.get("protocol", "")).lower()
        target = rule.get(side) or {}
        normal.add(
            (
                protocol,
                _normal_ports(protocol, rule.get("ports")),
                tuple(sorted(str(a) for a in target.get("addresses") or [])),
                tuple(sorted(str(t) for t in target.get("tags") or [])),
                tuple(sorted(int(i) for i in target.get("droplet_ids") or [])),
                tuple(sorted(str(u) for u in target.get("load_balancer_uids") or [])),
            )
        )
    return frozenset(normal)


def firewall_differences(existing: Mapping[str, Any], desired: Mapping[str, Any]) -> list[str]:
    """Name what differs between a firewall and its desired body (empty when equal)."""
    differences = []
    for key, side in (("inbound_rules", "sources"), ("outbound_rules", "destinations")):
        if _normal_rules(existing.get(key) or [], side) != _normal_rules(desired[key], side):
            differences.append(key.replace("_", " "))
    if set(existing.get("tags") or []) != set(desired["tags"]):
        differences.append("target tags")
    if set(existing.get("droplet_ids") or []) != set(desired["droplet_ids"]):
        differences.append("target droplets")
    return differences


# --------------------------------------------------------------------------
# Plan and reconcile
# --------------------------------------------------------------------------


@dataclass
class PlanItem:
    """One step of the plan: what happens (or would happen) to one resource."""

    action: str  # create, update, delete, wait or keep
    kind: str  # droplet, vpc, firewall, ssh_key or tags
    name: str
    detail: str = ""
    price_monthly: float | None = None

    @property
    def is_change(self) -> bool:
        """True for the actions that modify the account."""
        return self.action in ("create", "update", "delete")

    def line(self) -> str:
        """One human-readable line."""
        text = f"{self.action} {self.kind} {self.name}"
        if self.detail:
            text += f" ({self.detail})"
        if self.price_monthly is not None:
            text += f": ${self.price_monthly:,.2f}/month"
        return text


@dataclass
class Result:
    """What the module returns."""

    changed: bool
    plan: list[PlanItem]
    droplets: list[DropletInfo] = field(default_factory=list)
    vpc: dict[str, Any] | None = None
    firewalls: list[dict[str, Any]] = field(default_factory=list)
    ssh_key_ids: list[int] = field(default_factory=list)
    monthly_cost: float = 0.0
    monthly_cost_change: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def plan_lines(self) -> list[str]:
        """The plan as text: changes first, then a line for what stays, then the cost."""
        lines = [item.line() for item in self.plan if item.action != "keep"]
        kept = [item for item in self.plan if item.action == "keep"]
        if kept:
            lines.append(f"unchanged: {len(kept)} resources")
        if not any(item.is_change for item in self.plan):
            lines.insert(0, "nothing to change")
        sign = "+" if self.monthly_cost_change >= 0 else "-"
        lines.append(
            f"monthly cost: ${self.monthly_cost:,.2f} "
            f"({sign}${abs(self.monthly_cost_change):,.2f}/month from this run)"
        )
        return lines

    def as_dict(self) -> dict[str, Any]:
        """Module return values."""
        return {
            "changed": self.changed,
            "plan": [asdict(item) for item in self.plan],
            "plan_lines": self.plan_lines(),
            "droplets": [d.as_dict() for d in self.droplets],
            "vpc": self.vpc,
            "firewalls": self.firewalls,
            "ssh_key_ids": self.ssh_key_ids,
            "monthly_cost": round(self.monthly_cost, 2),
            "monthly_cost_change": round(self.monthly_cost_change, 2),
            "created": [i.name for i in self.plan if i.kind == "droplet" and i.action == "create"],
            "deleted": [i.name for i in self.plan if i.kind == "droplet" and i.action == "delete"],
        }


class EnvironmentReconciler:
    """Make an environment's resources match its spec, creating only what is missing."""

    def __init__(
        self,
        client: DigitalOceanClient,
        spec: EnvironmentSpec,
        check_mode: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.spec = spec
        self.check_mode = check_mode
        self.clock = clock
        self.warnings: list[str] = []

    # -- reading ------------------------------------------------------------

    def managed_droplets(self) -> list[DropletInfo]:
        """The droplets of this environment that this project manages."""
        return [
            d
            for d in self.client.droplets(self.spec.environment_tag)
            if self.spec.project in d.tags
        ]

    def _by_name(self, droplets: list[DropletInfo]) -> dict[str, DropletInfo]:
        by_name: dict[str, list[DropletInfo]] = {}
        for droplet in droplets:
            by_name.setdefault(droplet.name, []).append(droplet)
        duplicates = {name: found for name, found in by_name.items() if len(found) > 1}
        if duplicates:
            listing = "; ".join(
                f"{name}: ids {', '.join(str(d.id) for d in found)}"
                for name, found in sorted(duplicates.items())
            )
            raise ProvisioningError(
                f"Several droplets share a name in environment {self.spec.environment} "
                f"({listing}). They were not made by this module, which never duplicates; "
                "delete the extra ones by hand, then run again."
            )
        return {name: found[0] for name, found in by_name.items()}

    def check_catalog(self) -> dict[str, dict[str, Any]]:
        """Check region, sizes and images before anything is created; return the sizes."""
        spec = self.spec
        sizes = self.client.sizes()
        regions = self.client.regions()
        problems: list[str] = []
        region = regions.get(spec.region)
        if region is None or not region.get("available", True):
            known = ", ".join(sorted(s for s, r in regions.items() if r.get("available", True)))
            problems.append(f"unknown or unavailable region {spec.region!r} (available: {known})")
        images_seen: dict[str, bool] = {}
        bad_images: dict[str, list[str]] = {}
        for group in spec.groups:
            size = sizes.get(group.size)
            if size is None or not size.get("available", True):
                problems.append(f"unknown size {group.size!r} for group {group.name}")
            elif region is not None and spec.region not in (size.get("regions") or []):
                problems.append(
                    f"size {group.size!r} for group {group.name} is not offered in {spec.region}"
                )
            if group.image not in images_seen:
                images_seen[group.image] = self.client.image(group.image) is not None
            if not images_seen[group.image]:
                bad_images.setdefault(group.image, []).append(group.name)
        for image, groups in bad_images.items():
            problems.append(f"unknown image {image!r} for {', '.join(groups)}")
        if problems:
            raise SpecError("DigitalOcean does not offer what was asked: " + "; ".join(problems))
        return sizes

    # -- present ------------------------------------------------------------

    def present(self) -> Result:
        """Ensure every resource of the environment exists; wait for the droplets."""
        spec = self.spec
        spec.validate()
        self.client.account()  # a clear 401 before anything else
        sizes = self.check_catalog()
        existing = self._by_name(self.managed_droplets())
        plan: list[PlanItem] = []

        tag_names = self.client.tag_names()
        tags_missing = [t for t in spec.all_tags() if t not in tag_names]
        if tags_missing:
            plan.append(PlanItem("create", "tags", ", ".join(tags_missing)))

        vpc = next((v for v in self.client.vpcs() if v.get("name") == spec.vpc_name), None)
        if vpc is None:
            detail = spec.region + (f", {spec.vpc_ip_range}" if spec.vpc_ip_range else "")
            plan.append(PlanItem("create", "vpc", spec.vpc_name, detail))
        elif _slug(vpc.get("region")) != spec.region:
            raise SpecError(
                f"VPC {spec.vpc_name} exists in region {_slug(vpc.get('region'))}, "
                f"not {spec.region}: droplets and their VPC must share a region"
            )
        else:
            plan.append(PlanItem("keep", "vpc", spec.vpc_name, str(vpc.get("ip_range", ""))))

        account_keys = {
            (k.get("fingerprint") or ssh_fingerprint(k["public_key"])): k
            for k in self.client.ssh_keys()
            if k.get("fingerprint") or k.get("public_key")
        }
        keys_missing = [k for k in spec.ssh_keys if k.fingerprint not in account_keys]
        for key in spec.ssh_keys:
            action = "create" if key in keys_missing else "keep"
            plan.append(PlanItem(action, "ssh_key", key.name, key.fingerprint))

        firewalls: dict[str, list[dict[str, Any]]] = {}
        for fw in self.client.firewalls():
            firewalls.setdefault(fw.get("name", ""), []).append(fw)
        firewall_work: list[tuple[PlanItem, dict[str, Any], dict[str, Any] | None]] = []
        for group in spec.groups:
            body = desired_firewall(spec, group)
            found = firewalls.get(body["name"], [])
            if len(found) > 1:
                raise ProvisioningError(
                    f"Several cloud firewalls are named {body['name']}; delete the extra ones."
                )
            rules = f"{len(body['inbound_rules'])} inbound rules"
            if not found:
                item = PlanItem("create", "firewall", body["name"], rules)
            else:
                differences = firewall_differences(found[0], body)
                if differences:
                    item = PlanItem("update", "firewall", body["name"], ", ".join(differences))
                else:
                    item = PlanItem("keep", "firewall", body["name"], rules)
            plan.append(item)
            firewall_work.append((item, body, found[0] if found else None))

        droplet_work: list[tuple[PlanItem, GroupSpec]] = []
        tag_work: list[tuple[PlanItem, DropletInfo, list[str]]] = []
        cost = change = 0.0
        wanted = set()
        for group, name in spec.desired_droplets():
            wanted.add(name)
            price = float(sizes[group.size].get("price_monthly") or 0.0)
            cost += price
            droplet = existing.get(name)
            if droplet is None:
                detail = f"{group.name}, {group.size}, {group.image}, {spec.region}"
                item = PlanItem("create", "droplet", name, detail, price)
                change += price
                droplet_work.append((item, group))
                plan.append(item)
                continue
            self._drift_warnings(droplet, group)
            missing = [t for t in spec.droplet_tags(group) if t not in droplet.tags]
            if missing:
                item = PlanItem("update", "droplet", name, "add tags " + ", ".join(missing))
                tag_work.append((item, droplet, missing))
                plan.append(item)
            elif droplet.status != "active":
                plan.append(PlanItem("wait", "droplet", name, f"status {droplet.status}"))
            else:
                plan.append(PlanItem("keep", "droplet", name, f"{group.name}, {droplet.size_slug}"))
        for name, droplet in sorted(existing.items()):
            if name not in wanted:
                self.warnings.append(
                    f"droplet {name} (id {droplet.id}) is tagged for environment "
                    f"{spec.environment} but not in its spec; it was left alone"
                )
                price = float((sizes.get(droplet.size_slug) or {}).get("price_monthly") or 0.0)
                cost += price

        result = Result(
            changed=any(item.is_change for item in plan),
            plan=plan,
            monthly_cost=cost,
            monthly_cost_change=change,
            warnings=self.warnings,
        )
        if self.check_mode:
            result.droplets = list(existing.values())
            result.vpc = vpc
            return result

        for tag in tags_missing:
            self.client.create_tag(tag)
        if vpc is None:
            vpc = self.client.create_vpc(
                spec.vpc_name, spec.region, spec.vpc_ip_range, spec.vpc_description
            )
        for key in keys_missing:
            key_id = self.client.create_ssh_key(key.name, key.public_key)
            account_keys[key.fingerprint] = {"id": key_id, "name": key.name}
        result.ssh_key_ids = [int(account_keys[k.fingerprint]["id"]) for k in spec.ssh_keys]
        # Firewalls first, so that new droplets boot already behind them.
        for item, body, found in firewall_work:
            if found is None:
                result.firewalls.append(self.client.create_firewall(body))
                continue
            if item.action == "update":
                self.client.update_firewall(found["id"], body)
            result.firewalls.append({"id": found["id"], "name": body["name"]})
        for _item, droplet, missing in tag_work:
            for tag in missing:
                self.client.tag_droplets(tag, [droplet.id])
        actions: dict[str, int] = {}
        for item, group in droplet_work:
            action_id = self._create_droplet(item.name, group, str(vpc["id"]), result.ssh_key_ids)
            if action_id is not None:
                actions[item.name] = action_id
        result.vpc = {k: vpc.get(k) for k in ("id", "name", "region", "ip_range")}
        result.vpc["region"] = _slug(result.vpc["region"])
        if spec.wait:
            result.droplets = self.wait_active(sorted(wanted), actions)
        else:
            result.droplets = [d for d in self.managed_droplets() if d.name in wanted]
        result.droplets.sort(key=lambda d: d.name)
        return result

    def _drift_warnings(self, droplet: DropletInfo, group: GroupSpec) -> None:
        spec = self.spec
        if droplet.size_slug and droplet.size_slug != group.size:
            self.warnings.append(
                f"droplet {droplet.name} has size {droplet.size_slug}, the spec says "
                f"{group.size}; resize it by hand (it needs a power-off)"
            )
        if droplet.region and droplet.region != spec.region:
            self.warnings.append(
                f"droplet {droplet.name} is in {droplet.region}, the spec says {spec.region}"
            )

    def _create_droplet(
        self, name: str, group: GroupSpec, vpc_id: str, ssh_key_ids: list[int]
    ) -> int | None:
        spec = self.spec
        try:
            _droplet_id, action_id = self.client.create_droplet(
                name=name,
                region=spec.region,
                size=group.size,
                image=group.image,
                vpc_uuid=vpc_id,
                ssh_key_ids=ssh_key_ids,
                tags=spec.droplet_tags(group),
                monitoring=spec.monitoring,
                ipv6=spec.ipv6,
                backups=spec.backups,
                user_data=spec.user_data,
            )
        except DigitalOceanError as exc:
            if exc.status is None:
                # No answer: the droplet may exist all the same. Look before failing.
                if any(d.name == name for d in self.managed_droplets()):
                    return None
                raise ProvisioningError(
                    f"Creating droplet {name} got no answer ({exc.api_message}) and it is not "
                    "listed yet. Run again: the next run adopts the droplet if DigitalOcean "
                    "created it after all, and creates it otherwise."
                ) from exc
            if exc.status == 422:
                raise SpecError(
                    f"DigitalOcean refused to create droplet {name} (HTTP 422 "
                    f"{exc.error_id or 'unprocessable_entity'}: {exc.api_message}) with "
                    f"size={group.size}, image={group.image}, region={spec.region}"
                ) from exc
            raise
        return action_id

    def wait_active(self, names: list[str], actions: Mapping[str, int]) -> list[DropletInfo]:
        """Poll until every named droplet is active with addresses; fail at the deadline."""
        spec = self.spec
        deadline = self.clock() + spec.wait_timeout
        pending_actions = dict(actions)
        while True:
            current = self._by_name(self.managed_droplets())
            missing = [n for n in names if n not in current]
            if missing:
                raise ProvisioningError(
                    f"droplets {', '.join(missing)} disappeared while waiting for them"
                )
            waiting = [
                current[n]
                for n in names
                if current[n].status != "active" or not current[n].public_ipv4
            ]
            for name, action_id in list(pending_actions.items()):
                status = self.client.action(action_id).get("status")
                if status == "errored":
                    raise ProvisioningError(
                        f"DigitalOcean reports that creating droplet {name} failed (action "
                        f"{action_id} errored). Delete it with deprovision.yml or by hand, "
                        "then run again."
                    )
                if status == "completed":
                    del pending_actions[name]
            if not waiting:
                return [current[n] for n in names]
            if self.clock() >= deadline:
                listing = ", ".join(f"{d.name} ({d.status})" for d in waiting)
                raise ProvisioningTimeout(
                    f"droplets not active after {spec.wait_timeout:g} s: {listing}. Run again: "
                    "the droplets exist and the next run waits for them instead of creating more."
                )
            self.client.settings.sleep(spec.poll_interval)

    # -- absent -------------------------------------------------------------

    def absent(self) -> Result:
        """Delete the environment's droplets, firewalls, VPC and selector tags."""
        spec = self.spec
        spec.validate_names()
        self.client.account()
        sizes = self.client.sizes()
        droplets = sorted(self.managed_droplets(), key=lambda d: d.name)
        plan: list[PlanItem] = []
        saving = 0.0
        for droplet in droplets:
            price = float((sizes.get(droplet.size_slug) or {}).get("price_monthly") or 0.0)
            saving += price
            plan.append(PlanItem("delete", "droplet", droplet.name, f"id {droplet.id}", price))
        firewalls = [fw for fw in self.client.firewalls() if spec.owns(str(fw.get("name", "")))]
        plan += [PlanItem("delete", "firewall", fw["name"], f"id {fw['id']}") for fw in firewalls]
        vpc = next((v for v in self.client.vpcs() if v.get("name") == spec.vpc_name), None)
        if vpc is not None:
            plan.append(PlanItem("delete", "vpc", spec.vpc_name, f"id {vpc['id']}"))
        tags = sorted(t for t in self.client.tag_names() if spec.owns(t))
        if tags:
            plan.append(PlanItem("delete", "tags", ", ".join(tags)))
        result = Result(
            changed=bool(plan),
            plan=plan,
            droplets=droplets,
            monthly_cost=0.0,
            monthly_cost_change=-saving,
            warnings=self.warnings,
        )
        if self.check_mode or not plan:
            return result
        for droplet in droplets:
            self.client.delete_droplet(droplet.id)
        self._wait_gone([d.name for d in droplets])
        for fw in firewalls:
            self.client.delete_firewall(fw["id"])
        if vpc is not None:
            self._delete_vpc(str(vpc["id"]))
        for tag in tags:
            self.client.delete_tag(tag)
        return result

    def _wait_gone(self, names: list[str]) -> None:
        deadline = self.clock() + self.spec.wait_timeout
        while True:
            left = [d.name for d in self.managed_droplets() if d.name in names]
            if not left:
                return
            if self.clock() >= deadline:
                raise ProvisioningTimeout(
                    f"droplets still present {self.spec.wait_timeout:g} s after deletion: "
                    f"{', '.join(left)}. Run deprovision again."
                )
            self.client.settings.sleep(self.spec.poll_interval)

    def _delete_vpc(self, vpc_id: str) -> None:
        # DigitalOcean refuses to delete a VPC until its droplets are fully gone.
        deadline = self.clock() + self.spec.wait_timeout
        while True:
            try:
                self.client.delete_vpc(vpc_id)
                return
            except DigitalOceanError as exc:
                if exc.status == 404:
                    return
                if exc.status not in (403, 409, 422) or self.clock() >= deadline:
                    raise
            self.client.settings.sleep(self.spec.poll_interval)


def token_from_environment(environ: Mapping[str, str]) -> str:
    """Return the first API token found in the environment variables, or ''."""
    for name in TOKEN_ENV_VARS:
        if environ.get(name):
            return environ[name]
    return ""
