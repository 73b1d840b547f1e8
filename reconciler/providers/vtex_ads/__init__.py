"""VTEX Ads: the provider as declared data (limits, capabilities, auth), assembled from
its folder: ``mapping`` (what a product becomes), ``wire`` (requests and answers) and
``simulator`` (its sandbox)."""
from __future__ import annotations

from reconciler.providers.base import Capabilities, Limits
from reconciler.providers.vtex_ads import mapping
from reconciler.providers.vtex_ads.wire import Wire


class VtexAds(Wire):
    name = "vtex_ads"
    key_field = "product_sku"
    limits = Limits(max_items_per_request=500, max_in_flight=3)
    capabilities = Capabilities(
        records=("product", "inventory"),
        update_mode="full",
        delete="inventory update with is_available: false (the API has no delete)",
        readable=False,
        asynchronous=False,
        local_deletes=("product",),
    )
    auth_keys = ("app_id", "api_key")
    identity_settings = ()  # no setting names the catalog: the account is the credentials'
    # "3 simultaneous requests" does not say per what: every target at one URL shares them.
    limit_scope = ()
    default_base_url = "https://api.ads.vtex.com"
    simulator = "reconciler.providers.vtex_ads.simulator:VtexAdsSimulator"
    required_fields = mapping.REQUIRED
    override_fields = mapping.OVERRIDE_FIELDS
    records = staticmethod(mapping.records)
    product_problems = staticmethod(mapping.problems)
