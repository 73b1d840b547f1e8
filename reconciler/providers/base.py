"""The provider interface: what a destination API is, as data plus two functions.

A provider declares its limits and capabilities as data (:class:`Limits`,
:class:`Capabilities`) and implements only the translation between our world and the
wire:

* ``encode(operations) -> Request``: a batch of operations (all with the same
  :meth:`Provider.group_key`) becomes one HTTP request;
* ``decode(request, response) -> list[Outcome]``: the response becomes one outcome per
  operation of that request;
* ``poll_request(job)`` / ``decode_poll(job, response)`` for asynchronous work;
* ``read_request(cursor)`` / ``decode_read(response)`` where the remote catalog can be
  read.

and, on the manifest side (class-level: planning needs no credentials), what a product
becomes there: ``records(product, target)`` (its default mapping), ``required_fields``
and ``product_problems`` (what the API requires of a product), ``key_source`` (the
product field that is the item key), ``settings_model`` (its ``settings:``, validated
when manifests load) and ``overridable(target)`` (the fields ``overrides:`` may set).
Readable providers may also say how their reads differ from what was sent
(``normalise_read``, ``ownership``, ``reads_as_absent``, ``adoptable``: see
``reconciler.drift.compare``).

Everything else (batching by items and bytes, rate windows, requests in flight,
the HTTP status rules, retries with backoff, splitting, polling loops, recording)
lives once, in ``reconciler.apply``: a decode never sees a 401, 403, 429 or 5xx
(:mod:`reconciler.apply.http`), unless it claims that 5xx (``decodes_server_error``). Providers never touch the network or the state themselves.

An :class:`Operation` carries the payloads *as mapped* (see ``reconciler.mapping``);
``before`` is what the destination last confirmed, ``after`` what the manifests want.
The provider decides what goes on the wire (full record, changed fields only, a
delete-by-update, ...).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Annotated, Any, Callable, ClassVar, Collection, Hashable, Literal, Mapping, Sequence

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from reconciler.errors import ApplyError

if TYPE_CHECKING:  # the interface names these types; importing it loads neither
    import httpx

    from reconciler.manifest.models import Product, Target

Payloads = dict[str, dict[str, Any]]   # {record kind: payload}
FieldPath = tuple[str, ...]            # a field of a payload, nested: ("metadata", "season")

Action = Literal["create", "update", "delete"]
OutcomeStatus = Literal["confirmed", "accepted", "failed", "retry", "split", "pending"]


@dataclass(frozen=True)
class Limits:
    """Documented limits of one destination; ``None`` means the API documents none.

    ``max_requests_per_window`` / ``window_seconds`` is a strict sliding window over
    every *write* request of a target (all write endpoints of a provider share it).
    The window and ``max_in_flight`` are shared by every target with the same
    :attr:`Provider.limit_scope` (a window per catalog, where an API documents it
    so). A target's ``limits:`` may only lower these.
    """

    max_items_per_request: int | None = None
    max_bytes_per_request: int | None = None
    max_in_flight: int | None = None
    max_requests_per_window: int | None = None
    window_seconds: float | None = None

    def describe(self) -> str:
        """The limits in words, e.g. ``500 items/request, 3 requests in flight``."""
        parts = []
        if self.max_items_per_request:
            parts.append(f"{self.max_items_per_request} items/request")
        if self.max_bytes_per_request:
            parts.append(f"{self.max_bytes_per_request:,} bytes/request")
        if self.max_in_flight:
            parts.append(f"{self.max_in_flight} requests in flight")
        if self.max_requests_per_window:
            parts.append(f"{self.max_requests_per_window} requests/{self.window_seconds:g} s")
        return ", ".join(parts) or "none documented"

    def lowered(self, wanted: Mapping[str, Any] | None) -> "Limits":
        """These limits with ``wanted`` applied, never raising a documented one."""
        if not wanted:
            return self
        changes = {}
        for name, value in wanted.items():
            if value is None:
                continue
            documented = getattr(self, name)
            if name == "window_seconds":
                # A longer window for the same count is the stricter one.
                changes[name] = value if documented is None else max(documented, value)
            else:
                changes[name] = value if documented is None else min(documented, value)
        return replace(self, **changes)


@dataclass(frozen=True)
class Capabilities:
    """What a provider can do, shown by ``reconciler providers``."""

    records: tuple[str, ...]           # record kinds, e.g. ("product", "inventory")
    update_mode: Literal["full", "partial"]
    delete: str                        # how a delete is carried out, in words
    readable: bool                     # the remote catalog can be listed (drift, import)
    asynchronous: bool                 # writes are confirmed later, by polling
    item_reads: bool = False           # one item can be read by its key (read_item_request)
    local_deletes: tuple[str, ...] = ()  # record kinds whose delete has no API call


# Operation and Outcome are made by the million in a large apply: plain slotted
# dataclasses are three times cheaper to build than frozen ones. Treat them as values.
@dataclass(slots=True)
class Operation:
    """One planned change of one record of one item at one target."""

    action: Action
    record: str
    key: str                       # the provider's item key (the sku, unless it keys on another field)
    sku: str
    before: dict | None            # payload the destination last confirmed (None: create)
    after: dict | None             # payload the manifests want (None: delete)
    remote_id: str | None = None


@dataclass(frozen=True)
class Request:
    """One HTTP request, fully encoded. ``body`` is the exact bytes sent (limits are
    measured on it). ``headers`` may carry credentials: never log or store them."""

    method: str
    path: str                      # appended to the target's base_url
    operations: tuple[Operation, ...] = ()
    body: bytes | None = None
    params: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    endpoint: str = ""             # a short name for logs and progress, e.g. "batch"
    write: bool = True             # counts toward the rate window and request limits


@dataclass(frozen=True)
class Job:
    """Asynchronous work the destination accepted but has not confirmed yet.

    ``lines``: each operation's position in the request that was sent, for an API whose
    answers name lines (None: not known, as for a job read back from the state)."""

    handle: str
    operations: tuple[Operation, ...]
    lines: tuple[int, ...] | None = None


@dataclass(slots=True)
class Outcome:
    """What became of one operation.

    * ``confirmed``: the destination said the item was applied; the state records
      ``operation.after``.
    * ``accepted``: the destination only acknowledged receipt and offers no final
      per-item result (a queue, an HTTP 202); the state records ``operation.after``
      as for ``confirmed`` and lists the item as only accepted (``reconciler status``;
      ``status --verify`` reads it back where the provider can read one item).
    * ``failed``: the destination refused the item; ``reason`` is its words. Not retried.
    * ``retry``: transient, or refused only because of other items; send again.
    * ``split``: the request was refused as a whole for reasons the API does not tie to
      an item; send the operations again in smaller requests (bisect).
    * ``pending``: accepted for asynchronous processing; ``job`` says how to poll.

    ``kept``: for a confirmed or accepted update, what the destination holds instead
    of ``operation.after`` when it could not take all of it (fields an API cannot
    remove): the state records that, and the next plan proposes the rest again.
    """

    operation: Operation
    status: OutcomeStatus
    reason: str | None = None
    remote_id: str | None = None
    job: Job | None = None
    retry_after: float | None = None   # seconds, when the destination said so
    rate_limited: bool = False         # the destination said we went too fast
    kept: dict | None = None           # recorded instead of operation.after (see above)


@dataclass(frozen=True)
class Page:
    """One page of a remote catalog read: ``(record, key, payload)`` triples, with
    payloads in the same shape the mapping produces, and the next cursor or ``None``.
    ``incomplete`` says why the listing ends before the catalog does (an API that
    lists only so many items); the rest can only be read item by item."""

    items: list[tuple[str, str, dict]]
    cursor: str | None
    incomplete: str | None = None


class ReadError(ApplyError):
    """Reading a remote catalog page failed. ``transient`` (a provider's own throttling
    signal, such as Graph's codes on a 400) says the same read may succeed later, after
    ``retry_after`` seconds when the server said so."""

    def __init__(self, message: str, *, status: int | None = None, transient: bool = False,
                 retry_after: float | None = None):
        super().__init__(message)
        self.status = status
        self.transient = transient
        self.retry_after = retry_after


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


# A setting that names something (an id, a version): text that is not blank. A number
# is read as its text (``catalog_id: 1234567890``); null, a list, a mapping or a boolean
# is refused.
SettingText = Annotated[str, AfterValidator(_not_blank), Field(json_schema_extra={"pattern": r"\S"})]


class ProviderSettings(BaseModel):
    """A provider's ``settings:``. Subclasses declare the settings as fields (a field
    without a default is required; one that names something is :data:`SettingText`);
    a key that is not a field is an error."""

    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)

    @classmethod
    def required(cls) -> tuple[str, ...]:
        return tuple(name for name, info in cls.model_fields.items() if info.is_required())

    @classmethod
    def check(cls, settings: Mapping[str, Any]) -> None:
        """Raise the ValidationError of unknown keys and bad values. A missing required
        setting is not raised here: ``reconciler.manifest.validate`` reports it by name."""
        try:
            cls.model_validate(settings)
        except ValidationError as exc:
            errors = [e for e in exc.errors() if not (e["type"] == "missing" and len(e["loc"]) == 1)]
            if errors:
                raise ValidationError.from_exception_data(exc.title, [
                    {"type": e["type"], "loc": e["loc"], "input": e["input"], **({"ctx": e["ctx"]} if "ctx" in e else {})}
                    for e in errors]) from None


class Provider:
    """Base class of every provider. Subclasses set the class attributes and
    implement the methods; a provider instance is bound to one target."""

    name: ClassVar[str]
    key_field: ClassVar[str]           # the API's name for the item key
    limits: ClassVar[Limits]
    capabilities: ClassVar[Capabilities]
    auth_keys: ClassVar[tuple[str, ...]]      # required keys of a target's ``auth:``
    # Whether the credentials are encoded before a header carries them (HTTP Basic:
    # base64 of UTF-8), so that any text will do. Otherwise a header carries them as they
    # are, and header values are ASCII: reconciler.credentials refuses any other character.
    auth_encoded: ClassVar[bool] = False
    settings_model: ClassVar[type[ProviderSettings]] = ProviderSettings  # default: no settings
    # The settings that name what the rate window and the in-flight cap count: targets
    # of this provider at one base URL with equal values share them (``()``: all such
    # targets). None: each target has its own.
    limit_scope: ClassVar[tuple[str, ...] | None] = None
    # The settings that name the remote catalog (with the provider and base URL: the
    # target's identity, see reconciler.plan.binding). ``()``: the credentials do.
    identity_settings: ClassVar[tuple[str, ...]] = ()
    default_base_url: ClassVar[str]
    # Its sandbox simulator, as "module:Class" (loaded only by the sandbox).
    simulator: ClassVar[str | None] = None
    key_source: ClassVar[str] = "sku"  # the product field whose value is the item key
    required_fields: ClassVar[tuple[str, ...]] = ()  # product fields the API requires
    override_fields: ClassVar[Collection[str] | None] = None  # None: any field

    # -- the manifest side ---------------------------------------------------------
    @staticmethod
    def records(product: "Product", target: "Target") -> Payloads:
        """The default mapping: ``{record kind: payload}`` of one product at a target
        (plain JSON values, absent fields omitted)."""
        raise NotImplementedError

    @staticmethod
    def product_problems(product: "Product", target: "Target") -> list[str]:
        """What else the API refuses of this product, beyond ``required_fields``, each
        as a phrase such as ``"requires brand or gtin"``."""
        return []

    @classmethod
    def removal_warnings(cls, target: "Target", updates: int, fields: Collection[str]) -> list[str]:
        """What a plan must warn of when ``updates`` of its updates remove ``fields``:
        what apply cannot carry out as planned (an API may document no way to remove
        a field)."""
        return []

    @classmethod
    def overridable(cls, target: "Target") -> Collection[str] | None:
        """The payload fields a product's ``overrides:`` may set at this target
        (``None``: any field)."""
        return cls.override_fields

    # -- reading back (see reconciler.drift.compare) --------------------------------
    @staticmethod
    def normalise_read(payload: dict) -> dict:
        """A payload (as sent, or as read) without what the API returns differently
        for the same content (null fields are dropped before this)."""
        return payload

    @staticmethod
    def ownership(target: "Target") -> Callable[[FieldPath], bool]:
        """Whether a field that only the remote holds is ours, so its presence is drift
        (a field another system may own is not)."""
        return lambda path: True

    @staticmethod
    def reads_as_absent(payload: dict) -> bool:
        """Whether an item the state holds with this (normalised) payload is legitimately
        not listed by a read."""
        return False

    @staticmethod
    def adoptable(remote: dict, known: Sequence[dict], owned: Callable[[FieldPath], bool]) -> dict:
        """The part of a remote payload that ``import`` adopts, given the payloads the
        manifests or the state already hold for the item: their fields and ours."""
        names = {k for payload in known for k in payload}
        return {k: v for k, v in remote.items() if k in names or owned((k,))}

    def __init__(self, settings: Mapping[str, Any], credentials: Mapping[str, str]):
        self.settings = dict(settings)
        self.credentials = dict(credentials)

    # -- writing -------------------------------------------------------------
    def group_key(self, op: Operation) -> Hashable:
        """Operations with equal group keys may share one request."""
        raise NotImplementedError

    def encode(self, ops: Sequence[Operation]) -> Request:
        raise NotImplementedError

    def decode(self, request: Request, response: httpx.Response) -> list[Outcome]:
        raise NotImplementedError

    def decodes_server_error(self, response: httpx.Response) -> bool:
        """Whether a 5xx answer carries an error of this API's own that its decodes
        translate, rather than a server failure the engine retries as it is."""
        return False

    # -- asynchronous work ------------------------------------------------------
    def poll_request(self, job: Job) -> Request:
        raise NotImplementedError

    def decode_poll(self, job: Job, response: httpx.Response) -> list[Outcome] | None:
        """Final outcomes for the job's operations, or ``None`` while still running."""
        raise NotImplementedError

    # -- reading -----------------------------------------------------------------
    def read_request(self, cursor: str | None) -> Request:
        raise NotImplementedError

    def decode_read(self, response: httpx.Response) -> Page:
        raise NotImplementedError

    def read_item_request(self, record: str, key: str) -> Request:
        """Where ``capabilities.item_reads``: read one item by its key."""
        raise NotImplementedError

    def decode_read_item(self, response: httpx.Response) -> tuple[str, str, dict] | None:
        """The item as ``(record, key, payload)``, or ``None`` when the destination has
        no such item."""
        raise NotImplementedError

    def read_before_delete(self, op: Operation, resend: bool) -> bool:
        """Whether the delete ``op`` (being sent again, if ``resend``: its first attempt
        may have been applied) must read its item first (``read_item_request``): where
        the API's write would create a missing item (an upsert), or where its refusal of
        a delete already done may not say so. The engine records a delete whose item
        reads as absent as done, without a write."""
        return False
