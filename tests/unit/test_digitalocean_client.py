"""The DigitalOcean transport and client (package module_utils/ocpizza_digitalocean) against the fake API over real HTTP."""

from __future__ import annotations

import pytest
from fake_digitalocean import DEFAULT_TOKEN, FakeConfig, FakeDigitalOcean
from fake_digitalocean.testing import TEST_PUBLIC_KEY
from ocpizza_digitalocean.client import DigitalOceanClient
from ocpizza_digitalocean.errors import DigitalOceanError, ProvisioningError, SpecError
from ocpizza_digitalocean.naming import token_from_environment
from ocpizza_digitalocean.spec import ssh_fingerprint
from ocpizza_digitalocean.transport import TransportSettings


def make_client(fake, token=DEFAULT_TOKEN, **settings):
    sleeps = []
    options = {"timeout": 5.0, "max_retries": 3, "backoff_base": 0.01, "sleep": sleeps.append}
    options.update(settings)
    client = DigitalOceanClient(token, fake.url, TransportSettings(**options))
    return client, sleeps


def create_droplet(client, name, size="s-1vcpu-1gb", vpc_uuid=None, tags=()):
    """Create a droplet in fra1 from debian-12-x64, with nothing optional."""
    return client.create_droplet(
        name=name,
        region="fra1",
        size=size,
        image="debian-12-x64",
        vpc_uuid=vpc_uuid,
        ssh_key_ids=[],
        tags=list(tags),
        monitoring=False,
        ipv6=False,
        backups=False,
    )


@pytest.fixture
def fake():
    with FakeDigitalOcean(FakeConfig(active_after_seconds=0.2)) as server:
        yield server


def test_a_bad_token_is_named_as_such(fake):
    client, _ = make_client(fake, token="not-the-token")
    with pytest.raises(DigitalOceanError) as caught:
        client.account()
    assert caught.value.status == 401
    assert "rejected the API token" in str(caught.value)
    assert "DIGITALOCEAN_TOKEN" in str(caught.value)
    assert "not-the-token" not in str(caught.value)


def test_rate_limits_are_retried_with_the_servers_delay(fake):
    fake.config.retry_after = 0.05
    fake.rate_limit(2)
    client, sleeps = make_client(fake)
    assert client.account()["status"] == "active"
    assert client.settings.retries == 2
    assert client.settings.rate_limited == 2
    assert sleeps == [0.05, 0.05]
    assert fake.count("GET", "/v2/account", 429) == 2
    assert fake.count("GET", "/v2/account", 200) == 1


def test_backoff_doubles_without_a_hint_and_is_capped():
    settings = TransportSettings(backoff_base=1.0, backoff_max=5.0)
    assert [settings.delay(n) for n in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_endless_rate_limits_fail_clearly_after_the_retries(fake):
    fake.rate_limit(10)
    client, sleeps = make_client(fake, max_retries=2)
    with pytest.raises(DigitalOceanError) as caught:
        client.account()
    assert caught.value.status == 429
    assert "rate-limiting GET /account" in str(caught.value)
    assert len(sleeps) == 2


def test_a_rate_limited_create_is_sent_again_and_creates_one_droplet(fake):
    fake.rate_limit(1, method="POST", path="^/v2/droplets$")
    client, _ = make_client(fake)
    create_droplet(client, "one", tags=["t"])
    assert fake.droplet_names() == ["one"]
    assert fake.droplets_created == 1


def test_server_errors_are_retried_for_reads_but_never_for_creates(fake):
    fake.inject(503, method="GET", path="^/v2/sizes$", times=1)
    client, _ = make_client(fake)
    assert "s-4vcpu-8gb" in client.sizes()
    fake.inject(500, method="POST", path="^/v2/droplets$", times=1)
    with pytest.raises(DigitalOceanError) as caught:
        create_droplet(client, "two")
    assert caught.value.status == 500
    assert fake.count("POST", "^/v2/droplets$") == 1


def test_every_request_has_a_timeout(fake):
    hold = fake.hold("GET", "^/v2/regions$")
    client, _ = make_client(fake, timeout=0.3, max_retries=0)
    try:
        with pytest.raises(DigitalOceanError) as caught:
            client.regions()
    finally:
        hold.release()
    assert caught.value.status is None
    assert "could not be reached for GET /regions" in str(caught.value)
    assert "Timeout" in str(caught.value)


def test_lists_follow_every_page(fake):
    fake.config.max_per_page = 2
    for n in range(5):
        fake.add_droplet(f"d{n}", tags=["env:x"])
    fake.add_droplet("other", tags=["env:y"])
    client, _ = make_client(fake)
    assert sorted(d.name for d in client.droplets("env:x")) == [f"d{n}" for n in range(5)]
    assert fake.count("GET", "^/v2/droplets$") == 3


def test_a_422_keeps_digitaloceans_id_and_message(fake):
    client, _ = make_client(fake)
    with pytest.raises(DigitalOceanError) as caught:
        create_droplet(client, "bad", size="s-64vcpu-1tb")
    assert caught.value.status == 422
    assert caught.value.error_id == "unprocessable_entity"
    assert "invalid size" in str(caught.value)
    assert fake.droplet_names() == []


def test_unknown_images_are_none_and_known_ones_are_found(fake):
    client, _ = make_client(fake)
    assert client.image("ubuntu-18-04-x64") is None
    assert client.image("ubuntu-24-04-x64")["distribution"] == "Ubuntu"


def test_droplet_addresses_come_from_the_networks(fake):
    client, _ = make_client(fake)
    vpc = client.create_vpc("v", "fra1", None, "")
    create_droplet(client, "a", vpc_uuid=vpc["id"], tags=["env:x"])
    (new,) = client.droplets("env:x")
    assert (new.status, new.public_ipv4, new.private_ipv4) == ("new", None, None)
    fake.config.active_after_polls = 1
    (active,) = client.droplets("env:x")
    assert active.status == "active"
    assert active.public_ipv4.startswith("127.")
    assert active.private_ipv4.startswith("127.16.")
    assert active.vpc_uuid == vpc["id"]
    assert active.size_slug == "s-1vcpu-1gb" and active.region == "fra1"


def test_the_fingerprint_is_the_one_digitalocean_shows(fake):
    client, _ = make_client(fake)
    client.create_ssh_key("k", TEST_PUBLIC_KEY)
    (key,) = client.ssh_keys()
    assert key["fingerprint"] == ssh_fingerprint(TEST_PUBLIC_KEY)
    with pytest.raises(SpecError):
        ssh_fingerprint("not-a-key")


def test_the_token_may_come_from_either_variable():
    assert token_from_environment({"DIGITALOCEAN_ACCESS_TOKEN": "b"}) == "b"
    assert token_from_environment({"DIGITALOCEAN_TOKEN": "a", "DO_API_TOKEN": "c"}) == "a"
    assert token_from_environment({}) == ""
    with pytest.raises(ProvisioningError, match="DIGITALOCEAN_TOKEN"):
        DigitalOceanClient("", "http://127.0.0.1:9/v2/")
