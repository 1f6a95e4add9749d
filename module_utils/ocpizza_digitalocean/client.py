"""The API calls of this project, on python-digitalocean, returning plain data."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from . import transport
from .errors import DigitalOceanError, ProvisioningError, gone_counts_as_deleted
from .naming import DEFAULT_API_URL
from .transport import HAS_DIGITALOCEAN, TransportSettings


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

    def line(self) -> str:
        """One line for the operator: name, status and both addresses."""
        return f"{self.name}: {self.status}, public {self.public_ipv4}, private {self.private_ipv4}"


def slug(value: Any) -> str:
    """Return the slug of a region/image/size that the API gives as a dict or a string."""
    if isinstance(value, dict):
        return str(value.get("slug") or value.get("id") or value.get("name") or "")
    return "" if value is None else str(value)


def _first_address(networks: Iterable[Mapping[str, Any]], kind: str) -> str | None:
    """The first address of a kind (``public`` or ``private``) in a droplet's networks."""
    return next((n.get("ip_address") for n in networks if n.get("type") == kind), None)


def droplet_info(droplet: Any) -> DropletInfo:
    """Convert a python-digitalocean Droplet (or its JSON) into :class:`DropletInfo`."""
    data = droplet if isinstance(droplet, dict) else vars(droplet)
    networks = data.get("networks") or {}
    v4 = networks.get("v4") or []
    return DropletInfo(
        id=int(data["id"]),
        name=str(data.get("name")),
        status=str(data.get("status")),
        tags=list(data.get("tags") or []),
        size_slug=str(data.get("size_slug") or slug(data.get("size"))),
        region=slug(data.get("region")),
        image=slug(data.get("image")),
        vpc_uuid=data.get("vpc_uuid"),
        public_ipv4=_first_address(v4, "public"),
        private_ipv4=_first_address(v4, "private"),
        public_ipv6=_first_address(networks.get("v6") or [], "public"),
        created_at=data.get("created_at"),
    )


class DigitalOceanClient:
    """The API calls of this project; every one has a timeout, retries and typed errors."""

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

    def _get(self, path: str, key: str) -> Any:
        """``GET <path>`` (every page) and return the member ``key`` of the answer."""
        return self._new(transport.Manager).get_data(path)[key]

    @staticmethod
    def _delete(resource: Any, call: str = "destroy") -> None:
        """Delete a resource; one that is already gone (404) counts as deleted."""
        with gone_counts_as_deleted():
            getattr(resource, call)()

    # -- reading ------------------------------------------------------------

    def account(self) -> dict[str, Any]:
        """Return the account (a cheap call that checks the token)."""
        return dict(self._get("account", "account"))

    def sizes(self) -> dict[str, dict[str, Any]]:
        """Return every droplet size by slug (with ``price_monthly`` and ``regions``)."""
        return {size["slug"]: size for size in self._get("sizes", "sizes")}

    def regions(self) -> dict[str, dict[str, Any]]:
        """Return every region by slug."""
        return {region["slug"]: region for region in self._get("regions", "regions")}

    def image(self, slug: str) -> dict[str, Any] | None:
        """Return the image with this slug (or numeric id), or None when unknown."""
        try:
            return dict(self._get(f"images/{slug}", "image"))
        except DigitalOceanError as exc:
            if exc.status == 404:
                return None
            raise

    def droplets(self, tag: str) -> list[DropletInfo]:
        """Return every droplet that carries ``tag`` (all pages)."""
        manager = self._new(transport.Manager)
        return [droplet_info(d) for d in manager.get_all_droplets(tag_name=tag)]

    def action(self, action_id: int) -> dict[str, Any]:
        """Return an action (``status`` is in-progress, completed or errored)."""
        action = self._new(transport.Action, id=action_id)
        action.load_directly()
        return {"id": action.id, "status": action.status, "type": action.type}

    def vpcs(self) -> list[dict[str, Any]]:
        """Return every VPC of the account."""
        return list(self._get("vpcs", "vpcs"))

    def ssh_keys(self) -> list[dict[str, Any]]:
        """Return every SSH key of the account."""
        return list(self._get("account/keys", "ssh_keys"))

    def tag_names(self) -> set[str]:
        """Return the names of every tag of the account."""
        return {tag["name"] for tag in self._get("tags", "tags")}

    def firewalls(self) -> list[dict[str, Any]]:
        """Return every cloud firewall of the account."""
        return list(self._get("firewalls", "firewalls"))

    # -- writing ------------------------------------------------------------

    def create_tag(self, name: str) -> None:
        """Create a tag."""
        self._new(transport.Tag, name=name).create()

    def tag_droplets(self, tag: str, droplet_ids: Iterable[int]) -> None:
        """Add ``tag`` to droplets."""
        self._new(transport.Tag, name=tag).add_droplets([str(i) for i in droplet_ids])

    def delete_tag(self, name: str) -> None:
        """Delete a tag (DigitalOcean removes it from its resources)."""
        self._delete(self._new(transport.Tag, name=name), "delete")

    def create_vpc(
        self, name: str, region: str, ip_range: str | None, description: str
    ) -> dict[str, Any]:
        """Create a VPC and return it."""
        vpc = self._new(
            transport.VPC, name=name, region=region, ip_range=ip_range, description=description
        )
        vpc.create()
        return {"id": vpc.id, "name": vpc.name, "region": vpc.region, "ip_range": vpc.ip_range}

    def delete_vpc(self, vpc_id: str) -> None:
        """Delete a VPC (DigitalOcean refuses while droplets are still in it)."""
        self._delete(self._new(transport.VPC, id=vpc_id))

    def create_ssh_key(self, name: str, public_key: str) -> int:
        """Upload a public key and return its id."""
        key = self._new(transport.SSHKey, name=name, public_key=public_key)
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
            transport.Droplet,
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
        """Delete a droplet."""
        self._delete(self._new(transport.Droplet, id=droplet_id))

    def create_firewall(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create a cloud firewall from a body like ``firewall.desired_firewall`` returns."""
        firewall = self._new(
            transport.Firewall,
            name=body["name"],
            inbound_rules=[transport.InboundRule(**rule) for rule in body["inbound_rules"]],
            outbound_rules=[transport.OutboundRule(**rule) for rule in body["outbound_rules"]],
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
        self._new(transport.Firewall, id=firewall_id).get_data(
            f"firewalls/{firewall_id}", type="PUT", params=dict(body)
        )

    def delete_firewall(self, firewall_id: str) -> None:
        """Delete a cloud firewall."""
        self._delete(self._new(transport.Firewall, id=firewall_id))

    # -- load balancers (python-digitalocean's LoadBalancer cannot replace one) --

    def load_balancers(self) -> list[dict[str, Any]]:
        """Return every load balancer of the account."""
        return list(self._get("load_balancers", "load_balancers"))

    def load_balancer(self, load_balancer_id: str) -> dict[str, Any]:
        """Return one load balancer (``status`` is new, active or errored)."""
        return dict(self._get(f"load_balancers/{load_balancer_id}", "load_balancer"))

    def create_load_balancer(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create a load balancer from a body like ``LoadBalancerSpec.body`` returns."""
        answer = self._new(transport.Manager).get_data(
            "load_balancers", type="POST", params=dict(body)
        )
        return dict(answer["load_balancer"])

    def update_load_balancer(self, load_balancer_id: str, body: Mapping[str, Any]) -> None:
        """Replace a load balancer's settings (PUT takes the whole body)."""
        self._new(transport.Manager).get_data(
            f"load_balancers/{load_balancer_id}", type="PUT", params=dict(body)
        )

    def delete_load_balancer(self, load_balancer_id: str) -> None:
        """Delete a load balancer; one already gone counts as deleted."""
        with gone_counts_as_deleted():
            self._new(transport.Manager).get_data(
                f"load_balancers/{load_balancer_id}", type="DELETE"
            )
