"""FakeShop: a sixth provider that lives outside the package, registered by the tests
(``register("fakeshop", "fake_provider:FakeShop")``) to prove that a provider is one
folder. It is the example of docs/providers.md.

The provider as declared data (limits, capabilities, auth), assembled from its folder:
``settings``, ``mapping`` (what a product becomes), ``wire`` (requests, answers,
polling), ``reads`` (reading the catalog back) and ``simulator`` (its sandbox)."""
from __future__ import annotations

from reconciler.providers.base import Capabilities, Limits

from fake_provider import mapping
from fake_provider.reads import Reads
from fake_provider.settings import Settings


class FakeShop(Reads):
    name = "fakeshop"
    key_field = "id"
    limits = Limits(max_items_per_request=100)
    capabilities = Capabilities(
        records=("product",),
        update_mode="full",
        delete="a delete operation in a job",
        readable=True,
        asynchronous=True,
    )
    auth_keys = ("token",)
    default_base_url = "https://api.fakeshop.invalid"
    simulator = "fake_provider.simulator:FakeShopSimulator"
    settings_model = Settings
    required_fields = mapping.REQUIRED
    override_fields = mapping.OVERRIDE_FIELDS
    records = staticmethod(mapping.records)
