"""A fake DigitalOcean API for the tests of the provisioning module and inventory plugin."""

from .server import DEFAULT_TOKEN, FakeConfig, FakeDigitalOcean, Fault, Hold, RequestRecord

__all__ = ["DEFAULT_TOKEN", "FakeConfig", "FakeDigitalOcean", "Fault", "Hold", "RequestRecord"]
