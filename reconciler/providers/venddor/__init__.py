"""Venddor: the provider as declared data (limits, capabilities, auth), assembled from
its folder: ``mapping`` (what a product becomes), ``wire`` (requests and answers),
``reads`` (reading the products back, a page at a time) and ``simulator`` (its
sandbox)."""
from __future__ import annotations

from reconciler.providers.base import Capabilities, Limits
from reconciler.providers.venddor import mapping
from reconciler.providers.venddor.reads import Reads


class Venddor(Reads):
    name = "venddor"
    key_field = "product_code"
    limits = Limits(max_items_per_request=60)
    capabilities = Capabilities(
        records=("product",),
        update_mode="full",
        delete='the product re-sent with status: "D"',
        readable=True,
        asynchronous=False,
    )
    auth_keys = ("username", "password")
    auth_encoded = True  # HTTP Basic
    identity_settings = ()  # no setting names the catalog: the account is the credentials'
    # apidoc.venddor.com.br gives the base as https://www.venddor.com.br/api; the
    # documented path /api/products/ is appended to the part before it.
    default_base_url = "https://www.venddor.com.br"
    simulator = "reconciler.providers.venddor.simulator:VenddorSimulator"
    key_source = "gtin"  # two products could share one: the planner checks
    required_fields = mapping.REQUIRED
    override_fields = mapping.OVERRIDE_FIELDS
    records = staticmethod(mapping.records)
