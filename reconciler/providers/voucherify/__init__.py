"""Voucherify: the provider as declared data (limits, capabilities, auth), assembled
from its folder: ``mapping`` (what a product becomes), ``wire`` (requests, answers,
polling), ``reads`` (reading the catalog back) and ``simulator`` (its sandbox)."""
from __future__ import annotations

from reconciler.providers.base import Capabilities, Limits
from reconciler.providers.voucherify import mapping
from reconciler.providers.voucherify.reads import Reads


class Voucherify(Reads):
    name = "voucherify"
    key_field = "source_id"
    limits = Limits(max_bytes_per_request=10_485_760)
    capabilities = Capabilities(
        records=("product",),
        update_mode="partial",
        delete="every metadata key this tool set is sent as null (the API cannot remove keys)",
        readable=True,
        asynchronous=True,
        item_reads=True,
    )
    auth_keys = ("app_id", "app_token")
    identity_settings = ()  # no setting names the catalog: the project is the credentials'
    default_base_url = "https://api.voucherify.io"
    simulator = "reconciler.providers.voucherify.simulator:VoucherifySimulator"
    required_fields = mapping.REQUIRED
    override_fields = mapping.OVERRIDE_FIELDS
    records = staticmethod(mapping.records)
