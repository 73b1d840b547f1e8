"""Meta (Facebook) Catalog: the provider as declared data (limits, capabilities, auth),
assembled from its folder: ``settings``, ``mapping`` (what a product becomes), ``wire``
(requests, answers, polling), ``reads`` (reading the catalog back) and ``simulator``
(its sandbox)."""
from __future__ import annotations

from reconciler.providers.base import Capabilities, Limits
from reconciler.providers.meta_catalog import mapping
from reconciler.providers.meta_catalog.settings import Settings
from reconciler.providers.meta_catalog.reads import Reads


class MetaCatalog(Reads):
    name = "meta_catalog"
    key_field = "retailer_id"
    limits = Limits(max_items_per_request=5000, max_requests_per_window=100, window_seconds=3600)
    capabilities = Capabilities(
        records=("product",),
        update_mode="partial",
        delete="DELETE request in a batch",
        readable=True,
        asynchronous=True,
        item_reads=True,
    )
    auth_keys = ("access_token",)
    limit_scope = ("catalog_id",)
    identity_settings = ("catalog_id",)  # the settings that name the remote catalog
    default_base_url = "https://graph.facebook.com"
    simulator = "reconciler.providers.meta_catalog.simulator:MetaCatalogSimulator"
    settings_model = Settings
    required_fields = mapping.REQUIRED
    override_fields = mapping.OVERRIDE_FIELDS
    records = staticmethod(mapping.records)
    product_problems = staticmethod(mapping.problems)
