"""Mock shop load: realistic order lifecycles written to DynamoDB, the pipeline's source.

A fixed product catalogue (categories, prices, opening stock), a pool of customers of whom many
return, channels and regions. Each order lives a lifecycle — PLACED → PAID → SHIPPED → DELIVERED,
some CANCELLED or RETURNED, some quantities edited before payment, a share deleted outright — and
many orders are in flight at once, so changes interleave as in a real shop. `seed` makes the ids
and the lifecycles reproducible (timestamps are the wall clock: they are when the change happens).
"""

from __future__ import annotations

import queue
import random
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from faker import Faker

from sales_ops.settings import Settings

CHANNELS = (("web", 45), ("mobile", 40), ("marketplace", 10), ("store", 5))
REGIONS = (("us-east", 30), ("us-west", 25), ("eu-west", 25), ("ap-south", 12), ("sa-east", 8))
CATALOGUE_SEED = 20261123  # the shop's catalogue is the same whatever the load's seed
CATALOGUE_KEY = "reference/products/products.jsonl"
MAX_CUSTOMERS = 500_000
_DONE = object()  # end of a writer lane

_CATEGORIES = {
    "electronics": (
        ["Wireless", "Bluetooth", "Smart", "Portable", "USB-C"],
        ["Mouse", "Keyboard", "Headphones", "Speaker", "Charger", "Webcam"],
        (9, 249),
    ),
    "home": (
        ["Ceramic", "Bamboo", "Linen", "Cast Iron", "Glass"],
        ["Mug", "Cutting Board", "Towel Set", "Skillet", "Vase", "Lamp"],
        (8, 120),
    ),
    "books": (
        ["Illustrated", "Pocket", "Collector's", "Annotated"],
        ["Cookbook", "Atlas", "Novel", "Field Guide", "Poetry Collection"],
        (6, 60),
    ),
    "sports": (
        ["Pro", "Lightweight", "Trail", "Foldable"],
        ["Yoga Mat", "Water Bottle", "Jump Rope", "Running Cap", "Dumbbell"],
        (7, 150),
    ),
    "toys": (
        ["Wooden", "Magnetic", "Glow", "Classic"],
        ["Puzzle", "Train Set", "Building Blocks", "Kite", "Board Game"],
        (5, 80),
    ),
    "beauty": (
        ["Organic", "Hydrating", "Travel", "Vegan"],
        ["Face Cream", "Shampoo", "Lip Balm", "Serum", "Soap Bar"],
        (4, 70),
    ),
}


@dataclass(frozen=True)
class Product:
    product_id: str
    product_name: str
    category: str
    unit_price: Decimal
    opening_stock: int


def catalogue(size: int = 60) -> list[Product]:
    """The shop's products: stable ids, names, categories, prices and opening stock."""
    rng = random.Random(CATALOGUE_SEED)
    products: list[Product] = []
    names: set[str] = set()
    while len(products) < size:
        category = rng.choice(sorted(_CATEGORIES))
        adjectives, nouns, (low, high) = _CATEGORIES[category]
        name = f"{rng.choice(adjectives)} {rng.choice(nouns)}"
        if name in names:
            continue
        names.add(name)
        price = Decimal(rng.randint(low * 100, high * 100)) / 100
        products.append(
            Product(
                f"sku-{len(products) + 1:04d}",
                name,
                category,
                price.quantize(Decimal("0.01")),
                rng.randint(200, 5000),
            )
        )
    return products


@dataclass(frozen=True)
class Change:
    """One write to the table: a put of the order's full new image, or a delete."""

    order_id: str
    op: str  # "put" | "delete"
    fields: dict = field(default_factory=dict)  # what this step sets on the order


@dataclass
class LoadSummary:
    orders: int = 0
    inserts: int = 0
    updates: int = 0
    deletes: int = 0
    seconds: float = 0.0
    interrupted: bool = False  # stopped early (Ctrl-C); the counts are what was written

    @property
    def changes(self) -> int:
        return self.inserts + self.updates + self.deletes

    @property
    def rate(self) -> float:
        return self.changes / self.seconds if self.seconds else 0.0


def _weighted(rng: random.Random, choices: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([c for c, _ in choices], weights=[w for _, w in choices])[0]


class Shop:
    """Plans orders and their lifecycles from one seeded random generator."""

    def __init__(self, seed: int | None = None) -> None:
        self.rng = random.Random(seed)
        self.faker = Faker()
        self.faker.seed_instance(seed)
        self.products = catalogue()
        self.customers: list[str] = []

    def _customer(self) -> str:
        # Two orders in three come from a returning customer, favouring the loyal ones. The pool
        # stops growing at MAX_CUSTOMERS so that a huge load runs in bounded memory.
        full = len(self.customers) >= MAX_CUSTOMERS
        if self.customers and (full or self.rng.random() < 0.66):
            return self.customers[int(len(self.customers) * self.rng.random() ** 2)]
        customer = f"cus-{uuid.UUID(int=self.rng.getrandbits(128), version=4).hex[:10]}"
        self.customers.append(customer)
        return customer

    def plan_order(self) -> list[Change]:
        """The changes one order goes through, in order."""
        rng = self.rng
        order_id = f"ord-{uuid.UUID(int=rng.getrandbits(128), version=4)}"
        product = rng.choice(self.products)
        quantity = rng.choices([1, 2, 3, 4, 5], weights=[55, 25, 10, 6, 4])[0]
        first = {
            "order_id": order_id,
            "customer_id": self._customer(),
            "product_id": product.product_id,
            "product_name": product.product_name,
            "category": product.category,
            "quantity": quantity,
            "unit_price": product.unit_price,
            "status": "PLACED",
            "channel": _weighted(rng, CHANNELS),
            "region": _weighted(rng, REGIONS),
        }
        if rng.random() < 0.10:
            first["coupon_code"] = self.faker.bothify("SAVE-##??").upper()
        if rng.random() < 0.05:
            first["gift"] = {"wrap": True, "message": self.faker.sentence(nb_words=6)}
        steps = [Change(order_id, "put", first)]
        if rng.random() < 0.05:  # the customer edits the quantity before paying
            steps.append(Change(order_id, "put", {"quantity": quantity + rng.randint(1, 3)}))
        steps += [Change(order_id, "put", {"status": s}) for s in self._statuses()]
        if rng.random() < 0.05:
            steps.append(Change(order_id, "delete"))
        return steps

    def _statuses(self) -> list[str]:
        roll = self.rng.random()
        if roll < 0.08:
            return ["CANCELLED"]
        if roll < 0.12:
            return ["PAID", "CANCELLED"]
        if roll < 0.18:
            return ["PAID", "SHIPPED", "DELIVERED", "RETURNED"]
        # Most orders complete; some are still on their way when the load ends.
        return ["PAID", "SHIPPED", "DELIVERED"][: self.rng.choice([0, 1, 2, 3, 3, 3, 3])]

    def changes(self, orders: int, in_flight: int = 200) -> Iterator[Change]:
        """All changes of `orders` orders, interleaved with up to `in_flight` orders open at once."""
        active: list[list[Change]] = []
        started = 0
        while started < orders or active:
            open_new = not active or (len(active) < in_flight and self.rng.random() < 0.5)
            if started < orders and open_new:
                active.append(self.plan_order())
                started += 1
                index = len(active) - 1
            else:
                index = self.rng.randrange(len(active))
            steps = active[index]
            yield steps.pop(0)
            if not steps:
                active[index] = active[-1]
                active.pop()


def _to_item(state: dict, now: str) -> dict:
    """The DynamoDB item (low-level types) for an order's current state."""
    state["updated_at"] = now
    state.setdefault("created_at", now)
    state["order_total"] = (Decimal(state["quantity"]) * state["unit_price"]).quantize(Decimal("0.01"))
    return {key: _attr(value) for key, value in state.items()}


def _attr(value: Any) -> dict:
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | Decimal):
        return {"N": str(value)}
    if isinstance(value, dict):
        return {"M": {k: _attr(v) for k, v in value.items()}}
    return {"S": str(value)}


class RateLimiter:
    """At most `rate` events per second across threads (0 = unlimited)."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self.next_at = time.monotonic()
        self.lock = threading.Lock()

    def acquire(self, n: int, stop: threading.Event | None = None) -> None:
        """Wait for the right to send n events (returns early once `stop` is set)."""
        if not self.interval:
            return
        with self.lock:
            at = self.next_at = max(self.next_at, time.monotonic()) + n * self.interval
        delay = at - n * self.interval - time.monotonic()
        if delay > 0:
            (stop or threading.Event()).wait(delay)


class TableWriter:
    """Writes changes with BatchWriteItem, keeping every order's changes in order.

    Each thread owns the orders whose id hashes to it, and a batch never holds an order twice, so
    the stream sees each order's changes in the order they were planned.
    """

    BATCH = 25  # BatchWriteItem's limit

    def __init__(self, settings: Settings, rate: float, threads: int = 2) -> None:
        self.ddb = settings.client("dynamodb", max_pool_connections=threads * 2)
        self.table = settings.table
        self.limiter = RateLimiter(rate)
        self.threads = threads

    def write(
        self,
        changes: Iterator[Change],
        summary: LoadSummary,
        on_progress: Callable[[int], None] = lambda n: None,
        stop: threading.Event | None = None,
    ) -> None:
        """Stream `changes` to the table through one bounded queue per thread (memory stays flat).

        Ctrl-C, or setting `stop`, stops it promptly: each thread finishes the batch it is sending,
        and `summary` counts exactly what was written (`interrupted` set on Ctrl-C).
        """
        stop = stop if stop is not None else threading.Event()
        lanes: list[queue.Queue] = [queue.Queue(maxsize=self.LANE) for _ in range(self.threads)]
        errors: list[BaseException] = []
        counted = threading.Lock()
        workers = [
            threading.Thread(
                target=self._lane, args=(lane, summary, counted, on_progress, errors, stop), daemon=True
            )
            for lane in lanes
        ]
        for worker in workers:
            worker.start()
        try:
            for change in changes:
                lane = lanes[zlib.crc32(change.order_id.encode()) % self.threads]
                if not self._put(lane, change, stop, errors):
                    break
            for lane in lanes:
                self._put(lane, _DONE, stop, errors)
            for worker in workers:
                worker.join()
        except KeyboardInterrupt:
            stop.set()
            summary.interrupted = True
            for worker in workers:
                worker.join()
        if errors:
            raise errors[0]

    LANE = 2_000  # changes waiting per thread

    @staticmethod
    def _put(lane: queue.Queue, item: object, stop: threading.Event, errors: list) -> bool:
        """Queue an item unless writing has stopped (a thread failed); False when it has."""
        while not (errors or stop.is_set()):
            try:
                lane.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _lane(
        self,
        lane: queue.Queue,
        summary: LoadSummary,
        counted: threading.Lock,
        on_progress: Callable[[int], None],
        errors: list,
        stop: threading.Event,
    ) -> None:
        try:
            state: dict[str, dict] = {}
            carry: object = None
            while not stop.is_set():
                first = carry if carry is not None else self._take(lane, stop)
                carry = None
                if first is None or first is _DONE:
                    return
                assert isinstance(first, Change)
                batch, carry = self._batch(lane, first)
                requests = [self._request(change, state) for change in batch]
                self._flush([r for r, _ in requests], stop)
                with counted:
                    for _, kind in requests:
                        setattr(summary, kind, getattr(summary, kind) + 1)
                        summary.orders += kind == "inserts"
                on_progress(len(batch))
                if carry is _DONE:
                    return
        except BaseException as exc:  # surfaced by write(): a thread must not fail silently
            errors.append(exc)
            stop.set()

    @staticmethod
    def _take(lane: queue.Queue, stop: threading.Event) -> object:
        while not stop.is_set():
            try:
                return lane.get(timeout=0.2)
            except queue.Empty:
                continue
        return None

    def _batch(self, lane: queue.Queue, first: Change) -> tuple[list[Change], object]:
        """Up to BATCH queued changes, never one order twice; returns the batch and what is left over."""
        batch, keys = [first], {first.order_id}
        while len(batch) < self.BATCH:
            try:
                change = lane.get_nowait()
            except queue.Empty:
                return batch, None
            if change is _DONE or change.order_id in keys:
                return batch, change
            batch.append(change)
            keys.add(change.order_id)
        return batch, None

    def _request(self, change: Change, state: dict[str, dict]) -> tuple[dict, str]:
        """The write request for a change, and which counter it adds to once written."""
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        if change.op == "delete":
            state.pop(change.order_id, None)
            return {"DeleteRequest": {"Key": {"order_id": {"S": change.order_id}}}}, "deletes"
        kind = "updates" if change.order_id in state else "inserts"
        order = state.setdefault(change.order_id, {})
        order.update(change.fields)
        return {"PutRequest": {"Item": _to_item(order, now)}}, kind

    def _flush(self, batch: list[dict], stop: threading.Event) -> None:
        if not batch:
            return
        self.limiter.acquire(len(batch), stop)
        pending, attempt = batch, 0
        while pending:
            response = self.ddb.batch_write_item(RequestItems={self.table: pending})
            pending = response.get("UnprocessedItems", {}).get(self.table, [])
            if pending:
                attempt += 1
                time.sleep(min(0.05 * 2**attempt, 2.0))


def write_catalogue(settings: Settings) -> None:
    """Publish the catalogue (with opening stock) for the inventory rollup to join."""
    import json

    lines = [
        json.dumps(
            {
                "product_id": p.product_id,
                "product_name": p.product_name,
                "category": p.category,
                "unit_price": float(p.unit_price),
                "opening_stock": p.opening_stock,
            }
        )
        for p in catalogue()
    ]
    settings.client("s3").put_object(
        Bucket=settings.bucket, Key=CATALOGUE_KEY, Body=("\n".join(lines) + "\n").encode()
    )


def run_load(
    settings: Settings,
    orders: int,
    rate: float = 0.0,
    seed: int | None = None,
    threads: int = 2,
    on_progress: Callable[[int], None] = lambda n: None,
) -> LoadSummary:
    """Write `orders` orders' changes, planned as they go, at up to `rate` changes/s (0 = unlimited).

    Interrupted (Ctrl-C), it returns what it wrote with `interrupted` set.
    """
    if orders < 0:
        raise ValueError("orders must be ≥ 0")
    if not 0 <= rate < float("inf"):
        raise ValueError("rate must be a number ≥ 0 (0 means as fast as possible)")
    write_catalogue(settings)
    summary = LoadSummary()
    started = time.monotonic()
    TableWriter(settings, rate, threads).write(Shop(seed).changes(orders), summary, on_progress)
    summary.seconds = time.monotonic() - started
    return summary


LIVE_IN_FLIGHT = 50  # orders open at once in a continuous load: each lives ~LIVE_IN_FLIGHT * 4 / rate s


def run_live_load(
    settings: Settings,
    rate: float,
    seed: int | None = None,
    stop: threading.Event | None = None,
    on_progress: Callable[[int], None] = lambda n: None,
    summary: LoadSummary | None = None,
) -> LoadSummary:
    """Orders living their lifecycles, at `rate` changes/s, until `stop` is set (or interrupted).

    The gentle background load of `make run`: new orders keep arriving while open ones are paid,
    shipped, delivered, cancelled or deleted, so every dashboard panel keeps moving.
    """
    if rate <= 0:
        raise ValueError("a continuous load needs a rate > 0 (changes/s)")
    write_catalogue(settings)
    writer = TableWriter(settings, rate, threads=1)
    summary = summary if summary is not None else LoadSummary()
    started = time.monotonic() - summary.seconds
    try:
        changes = Shop(seed).changes(sys.maxsize, in_flight=LIVE_IN_FLIGHT)
        writer.write(changes, summary, on_progress, stop=stop)
    finally:
        summary.seconds = time.monotonic() - started
    return summary


def write_probe(settings: Settings, order_id: str, quantity: int = 1) -> Decimal:
    """One PLACED order written straight to DynamoDB (the freshness probes); returns its order_total."""
    product = catalogue()[0]
    state = {
        "order_id": order_id,
        "customer_id": "cus-probe",
        "product_id": product.product_id,
        "product_name": product.product_name,
        "category": product.category,
        "quantity": quantity,
        "unit_price": product.unit_price,
        "status": "PLACED",
        "channel": "web",
        "region": "us-east",
    }
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    item = _to_item(state, now)
    settings.client("dynamodb").put_item(TableName=settings.table, Item=item)
    total = state["order_total"]  # set by _to_item, as for every order the shop writes
    assert isinstance(total, Decimal)
    return total
