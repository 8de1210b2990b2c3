"""The built-in scenarios, written in the scenario-file format (see ``docs/scenarios.md``).

* ``checkout`` — a Rust edge, Go and JVM services, a parallel fan-out, databases, an external
  payment API and an async notification: a realistic shop with ordinary runtime pauses.
* ``gc-cascade`` — the same shop whose JVM ``inventory`` service runs out of heap: full GCs of
  hundreds of ms every few seconds push its callers past their timeouts and into retries.
* ``steady`` — the same shop with only short pauses and generous timeouts: negative control.
* ``slow-dependency`` — short pauses only, but the external payment API and the orders database
  have a slow tail: timeouts that are *not* GC-caused (second negative control).
* ``gc-hard`` — what real SDK traces showed the shop is too clean for: a busy Node.js gateway
  with a whole-millisecond clock that pauses between starting a CLIENT span and sending it,
  CPython services whose collections come back to back, and a low-rate CPython service with
  one span per request.
"""

from __future__ import annotations

import copy
from typing import Any

from tailscope.errors import UsageError
from tailscope.simulate.scenario import Scenario, scenario_from_mapping

_CHECKOUT: dict[str, Any] = {
    "name": "checkout",
    "description": "A shop: Rust edge, Go checkout/cart, JVM inventory/payments, fan-out, DBs",
    "arrival": {"rate_per_s": 100.0, "duration_s": 60.0},
    "network": {"median_ms": 0.3, "sigma": 0.3},
    "sampling": 1.0,
    "clock_offsets_ms": {"host-a": 0.0, "host-b": 1.5, "host-c": -2.0, "host-d": 4.0},
    "entries": [
        {"service": "frontend", "operation": "POST /api/checkout", "weight": 3.0},
        {"service": "frontend", "operation": "GET /api/cart", "weight": 7.0},
    ],
    "services": {
        "frontend": {
            "runtime": "rust",
            "instances": 2,
            "hosts": ["host-a"],
            "operations": {
                "POST /api/checkout": {
                    "work": {"median_ms": 0.6, "sigma": 0.3},
                    "steps": [
                        {
                            "call": {
                                "service": "checkout",
                                "operation": "checkout.v1.CheckoutService/PlaceOrder",
                                "timeout_ms": 3000,
                            }
                        }
                    ],
                },
                "GET /api/cart": {
                    "work": {"median_ms": 0.4, "sigma": 0.3},
                    "steps": [
                        {"call": {"service": "cart", "operation": "GET /cart", "timeout_ms": 500}}
                    ],
                },
            },
        },
        "checkout": {
            "runtime": "go",
            "protocol": "grpc",
            "instances": 2,
            "hosts": ["host-b"],
            "operations": {
                "checkout.v1.CheckoutService/PlaceOrder": {
                    "work": {"median_ms": 1.5, "sigma": 0.4},
                    "steps": [
                        {
                            "call": {
                                "service": "cart",
                                "operation": "GET /cart",
                                "timeout_ms": 500,
                                "retries": 1,
                            }
                        },
                        {
                            "parallel": [
                                {
                                    "call": {
                                        "service": "inventory",
                                        "operation": "inventory.v1.InventoryService/Reserve",
                                        "timeout_ms": 800,
                                        "retries": 2,
                                        "backoff_ms": 25,
                                    }
                                },
                                {
                                    "call": {
                                        "service": "pricing",
                                        "operation": "POST /quote",
                                        "timeout_ms": 800,
                                    }
                                },
                            ]
                        },
                        {
                            "call": {
                                "service": "payments",
                                "operation": "POST /charge",
                                "timeout_ms": 2000,
                            }
                        },
                        {"dependency": {"name": "orders-db", "timeout_ms": 1000}},
                        {
                            "publish": {
                                "topic": "orders",
                                "system": "kafka",
                                "service": "notifier",
                                "operation": "process orders",
                                "delay": {"median_ms": 3.0, "sigma": 0.6},
                            }
                        },
                    ],
                }
            },
        },
        "cart": {
            "runtime": "go",
            "instances": 2,
            "hosts": ["host-b"],
            "operations": {
                "GET /cart": {
                    "work": {"median_ms": 0.8, "sigma": 0.4},
                    "steps": [{"dependency": {"name": "cart-cache", "timeout_ms": 100}}],
                }
            },
        },
        "inventory": {
            "runtime": "java",
            "protocol": "grpc",
            "instances": 3,
            "hosts": ["host-c"],
            "operations": {
                "inventory.v1.InventoryService/Reserve": {
                    "work": {"median_ms": 3.0, "sigma": 0.5},
                    "steps": [{"dependency": {"name": "inventory-db", "timeout_ms": 1000}}],
                }
            },
        },
        "pricing": {
            "runtime": "dotnet",
            "instances": 2,
            "hosts": ["host-d"],
            "operations": {
                "POST /quote": {
                    "work": {
                        "median_ms": 2.0,
                        "sigma": 0.5,
                        "tail": {"probability": 0.01, "median_ms": 25.0, "sigma": 0.4},
                    }
                }
            },
        },
        "payments": {
            "runtime": "java",
            "instances": 2,
            "hosts": ["host-c", "host-d"],
            "operations": {
                "POST /charge": {
                    "work": {"median_ms": 4.0, "sigma": 0.4},
                    "steps": [
                        {
                            "dependency": {
                                "name": "payment-api",
                                "timeout_ms": 1500,
                                "retries": 1,
                                "backoff_ms": 100,
                            }
                        }
                    ],
                }
            },
        },
        "notifier": {
            "runtime": "nodejs",
            "instances": 1,
            "hosts": ["host-d"],
            "operations": {"process orders": {"work": {"median_ms": 1.2, "sigma": 0.5}}},
        },
    },
    "dependencies": {
        "orders-db": {
            "type": "db",
            "system": "postgresql",
            "address": "orders-db.internal",
            "operation": "INSERT",
            "latency": {"median_ms": 2.5, "sigma": 0.4},
        },
        "inventory-db": {
            "type": "db",
            "system": "postgresql",
            "address": "inventory-db.internal",
            "operation": "UPDATE",
            "latency": {"median_ms": 1.5, "sigma": 0.4},
        },
        "cart-cache": {
            "type": "db",
            "system": "redis",
            "address": "cart-cache.internal",
            "port": 6379,
            "operation": "GET",
            "latency": {"median_ms": 0.3, "sigma": 0.3},
        },
        "payment-api": {
            "type": "http",
            "address": "api.payments.example.com",
            "operation": "POST",
            "latency": {"median_ms": 35.0, "sigma": 0.35},
        },
    },
}

_SHORT_PAUSES_ONLY: dict[str, dict[str, Any]] = {
    "checkout": {"gc-pressure": {"every_ms": 0}},
    "cart": {"gc-pressure": {"every_ms": 0}},
    "inventory": {"gc-full": {"every_ms": 0}},
    "payments": {"gc-full": {"every_ms": 0}},
    "pricing": {"gc-gen2": {"every_ms": 0}},
    "notifier": {"gc-mark-compact": {"every_ms": 0}},
}


def _gc_cascade() -> dict[str, Any]:
    data = copy.deepcopy(_CHECKOUT)
    data["name"] = "gc-cascade"
    data["description"] = (
        "The shop with a JVM inventory service out of heap: frequent full GCs of hundreds of ms "
        "push checkout's calls past their 150 ms timeout and into retries"
    )
    data["arrival"] = {"rate_per_s": 200.0, "duration_s": 30.0}
    data["entries"] = [{"service": "frontend", "operation": "POST /api/checkout"}]
    services = data["services"]
    services["inventory"]["pauses"] = {
        "gc-young": {"every_ms": 1200, "duration": {"median_ms": 8.0, "sigma": 0.4}},
        "gc-full": {"every_ms": 1400, "duration": {"median_ms": 280.0, "sigma": 0.35}},
    }
    for name, overrides in _SHORT_PAUSES_ONLY.items():
        if name != "inventory":
            services[name]["pauses"] = overrides
    fan_out = services["checkout"]["operations"]["checkout.v1.CheckoutService/PlaceOrder"]
    inventory_call = fan_out["steps"][1]["parallel"][0]["call"]
    inventory_call.update({"timeout_ms": 150, "retries": 2, "backoff_ms": 20})
    return data


def _steady() -> dict[str, Any]:
    data = copy.deepcopy(_CHECKOUT)
    data["name"] = "steady"
    data["description"] = "The shop with short runtime pauses only: the negative control"
    for name, overrides in _SHORT_PAUSES_ONLY.items():
        data["services"][name]["pauses"] = overrides
    pricing = data["services"]["pricing"]["operations"]["POST /quote"]
    pricing["work"] = {"median_ms": 2.0, "sigma": 0.4}
    return data


def _slow_dependency() -> dict[str, Any]:
    data = _steady()
    data["name"] = "slow-dependency"
    data["description"] = (
        "Short pauses only, but the payment API and the orders database have a slow tail: "
        "timeouts that are not caused by GC"
    )
    data["arrival"] = {"rate_per_s": 200.0, "duration_s": 30.0}
    data["entries"] = [{"service": "frontend", "operation": "POST /api/checkout"}]
    deps = data["dependencies"]
    deps["payment-api"]["latency"] = {
        "median_ms": 35.0,
        "sigma": 0.35,
        "tail": {"probability": 0.04, "median_ms": 900.0, "sigma": 0.3},
    }
    deps["orders-db"]["latency"] = {
        "median_ms": 2.5,
        "sigma": 0.4,
        "tail": {"probability": 0.02, "median_ms": 400.0, "sigma": 0.3},
    }
    steps = data["services"]["checkout"]["operations"]["checkout.v1.CheckoutService/PlaceOrder"][
        "steps"
    ]
    steps[3]["dependency"].update({"timeout_ms": 250, "retries": 1, "backoff_ms": 20})
    payment = data["services"]["payments"]["operations"]["POST /charge"]["steps"][0]
    payment["dependency"].update({"timeout_ms": 500, "retries": 1, "backoff_ms": 50})
    return data


def _gc_hard() -> dict[str, Any]:
    def gen2(every_ms: float, median_ms: float, back_to_back: float) -> dict[str, Any]:
        return {
            "gc-gen2": {
                "every_ms": every_ms,
                "duration": {"median_ms": median_ms, "sigma": 0.5},
                "back_to_back": {"probability": back_to_back, "gap_ms": 14.0},
            }
        }

    return {
        "name": "gc-hard",
        "description": (
            "Real-SDK difficulties: a busy Node.js gateway with a millisecond clock that pauses "
            "between a CLIENT start and the send, CPython services with back-to-back "
            "collections, a low-rate service with one span per request"
        ),
        "arrival": {"rate_per_s": 150.0, "duration_s": 30.0},
        "network": {"median_ms": 0.4, "sigma": 0.4},
        "sampling": 1.0,
        "clock_offsets_ms": {"host-a": 0.0, "host-b": 3.0, "host-c": -2.5},
        "entries": [
            {"service": "gateway", "operation": "GET /api/order", "weight": 0.8},
            {"service": "gateway", "operation": "GET /api/item", "weight": 0.2},
        ],
        "services": {
            "gateway": {
                "runtime": "nodejs",
                "instances": 1,
                "hosts": ["host-a"],
                "clock_resolution_ms": 1.0,
                "send_work": {"median_ms": 0.6, "sigma": 0.5},
                "pauses": {
                    "gc-scavenge": {"every_ms": 300},
                    "gc-mark-compact": {
                        "every_ms": 2500,
                        "duration": {"median_ms": 70.0, "sigma": 0.5},
                        "back_to_back": {"probability": 0.2, "gap_ms": 10.0},
                    },
                },
                "operations": {
                    "GET /api/order": {
                        "work": {"median_ms": 1.5, "sigma": 0.5},
                        "steps": [
                            {
                                "call": {
                                    "service": "orders",
                                    "operation": "GET /order",
                                    "timeout_ms": 250,
                                    "retries": 1,
                                    "backoff_ms": 20,
                                }
                            }
                        ],
                    },
                    "GET /api/item": {
                        "work": {"median_ms": 1.0, "sigma": 0.5},
                        "steps": [
                            {
                                "call": {
                                    "service": "catalog",
                                    "operation": "GET /item",
                                    "timeout_ms": 200,
                                }
                            }
                        ],
                    },
                },
            },
            "orders": {
                "runtime": "python",
                "instances": 2,
                "hosts": ["host-b"],
                "pauses": gen2(2500.0, 140.0, 0.3),
                "operations": {
                    "GET /order": {
                        "work": {"median_ms": 4.0, "sigma": 0.5},
                        "steps": [{"dependency": {"name": "orders-db", "timeout_ms": 300}}],
                    }
                },
            },
            "catalog": {
                "runtime": "python",
                "instances": 1,
                "hosts": ["host-c"],
                "pauses": gen2(3000.0, 120.0, 0.2),
                "operations": {"GET /item": {"work": {"median_ms": 3.0, "sigma": 0.5}}},
            },
        },
        "dependencies": {
            "orders-db": {
                "type": "db",
                "system": "postgresql",
                "address": "orders-db.internal",
                "operation": "SELECT",
                "latency": {
                    "median_ms": 2.0,
                    "sigma": 0.4,
                    "tail": {"probability": 0.01, "median_ms": 400.0, "sigma": 0.3},
                },
            }
        },
    }


_SOURCES: dict[str, dict[str, Any]] = {
    "checkout": _CHECKOUT,
    "gc-cascade": _gc_cascade(),
    "steady": _steady(),
    "slow-dependency": _slow_dependency(),
    "gc-hard": _gc_hard(),
}

BUILTIN_SCENARIOS: tuple[str, ...] = tuple(_SOURCES)
"""Names accepted by :func:`builtin_scenario` and by ``tailscope generate``."""


def builtin_scenario_mapping(name: str) -> dict[str, Any]:
    """The scenario-file content of a built-in scenario (a deep copy: edit freely)."""
    if name not in _SOURCES:
        raise UsageError(
            f"unknown scenario {name!r}; built-in scenarios: {', '.join(BUILTIN_SCENARIOS)}"
        )
    return copy.deepcopy(_SOURCES[name])


def builtin_scenario(name: str) -> Scenario:
    """A built-in scenario by name.

    Raises:
        UsageError: unknown name (the message lists the valid ones).
    """
    return scenario_from_mapping(builtin_scenario_mapping(name), name)
