"""Bloomreach Engagement: the provider as declared data (limits, capabilities, auth),
assembled from its folder: ``settings``, ``mapping`` (what a product becomes), ``wire``
(requests and answers), ``reads`` (reading the catalog back, a page or an item at a
time) and ``simulator`` (its sandbox)."""
from __future__ import annotations

from reconciler.providers.base import Capabilities, Limits
from reconciler.providers.bloomreach import mapping
from reconciler.providers.bloomreach.reads import Reads
from reconciler.providers.bloomreach.settings import Settings


class Bloomreach(Reads):
    name = "bloomreach"
    key_field = "item_id"
    limits = Limits(max_items_per_request=5000, max_bytes_per_request=10_000_000,
                    max_requests_per_window=5, window_seconds=10)
    capabilities = Capabilities(
        records=("product",),
        update_mode="partial",
        delete="DELETE …/items/bulk-delete",
        readable=True,
        asynchronous=False,
        item_reads=True,
    )
    auth_keys = ("key_id", "key_secret")
    auth_encoded = True  # HTTP Basic
    limit_scope = ("project_id", "catalog_id")
    identity_settings = ("project_id", "catalog_id")  # the settings that name the remote catalog
    default_base_url = "https://api.exponea.com"
    simulator = "reconciler.providers.bloomreach.simulator:BloomreachSimulator"
    settings_model = Settings
    records = staticmethod(mapping.records)
    product_problems = staticmethod(mapping.problems)
    overridable = staticmethod(mapping.overridable)
