"""Fuzzing a running service from its OpenAPI document, with the inputs that have broken services.

``fuzz_openapi`` (testing.py) lets Schemathesis generate schema-shaped values; its strings for a
``format: date-time`` stay within what hypothesis-jsonschema draws, and a plain string parameter
that the service reads as a period or a number never sees ``9999-W99`` or ``1e308``. The runner
here adds, for every operation of the document:

1. a Schemathesis run whose cases get some of their parameters (path, query, header, body fields
   at any depth) replaced by edge values, and whose path parameters may be ids that exist;
2. a sweep: the richest case that succeeded (else the richest generated) with one slot at a time
   replaced by each edge value of its kind, so every parameter meets every edge, whatever the
   random draw.

A failure is a 5xx or a documented response that does not match its schema. Each is reported
with the operation, the slot, the exact input and the last lines of the traceback the service
logged for it (the logs are read back by correlation id), grouped per operation and slot.
The edge values and the slots they go in are in ``fuzz_inputs``; reading the log back in ``fuzz_log``.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import httpx

from citystat_common.fuzz_inputs import (
    ALL_EDGES,
    EDGE_DATETIMES,
    Slot,
    header_safe,
    is_rendering_edge,
    operation_slots,
    set_in,
    slot_values,
)
from citystat_common.fuzz_log import LogTap

# --- the runner ---------------------------------------------------------------------------------


@dataclass
class Findings:
    """Failures grouped per operation and slot: the first input that failed, and every edge that did."""

    groups: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)

    def add(self, label: str, slot: str, value: Any, request: str, problem: str, trace: str) -> None:
        what = problem.split(" ", 1)[0]  # the status (or 'no'), so a 5xx is never hidden in a schema group
        g = self.groups.setdefault((label, slot, what), {"values": [], "request": request, "problem": problem,
                                                         "trace": trace})
        shown = _short(value)
        if shown not in g["values"]:
            g["values"].append(shown)

    def report(self) -> list[str]:
        out = []
        for (label, slot, _), g in sorted(self.groups.items()):
            out.append(f"{label} [{slot}] failed for {len(g['values'])} value(s): {', '.join(g['values'][:12])}\n"
                       f"    first: {g['request']}\n    -> {g['problem']}\n    log: {g['trace']}")
        return out


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}...({len(text)} chars)"


def _encode_json(body: Any) -> bytes:
    # allow_nan: NaN and Infinity go out as the bare tokens Python's json module reads back
    return json.dumps(body, allow_nan=True, ensure_ascii=False).encode("utf-8", "surrogatepass")


def _form_value(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v, allow_nan=True) if not isinstance(v, float) else repr(v)


def _form_pairs(body: Any) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for k, v in (body or {}).items() if isinstance(body, dict) else []:
        for item in v if isinstance(v, list) else [v]:
            pairs.append((k, _form_value(item)))
    return pairs


def _query_pairs(query: dict[str, Any]) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for k, v in query.items():
        for item in v if isinstance(v, list) else [v]:
            pairs.append((k, "" if item is None else _form_value(item) if not isinstance(item, bool) else str(item).lower()))
    return pairs


@dataclass
class Base:
    """A case to sweep from: what was sent and whether it succeeded."""

    path_parameters: dict[str, Any]
    query: dict[str, Any]
    headers: dict[str, Any]
    body: Any
    media_type: str | None
    ok: bool

    def richness(self) -> tuple[int, int]:
        return (int(self.ok), len(json.dumps([self.query, self.body], default=str)))


class Runner:
    def __init__(self, base_url: str, schema_doc: dict[str, Any], *, headers: dict[str, str] | None,
                 known: dict[str, list[Any]], variants: dict[str, list[Any]], tap: LogTap,
                 edges: Callable[[Any], bool]) -> None:
        import schemathesis

        self.base_url = base_url
        self.doc = schema_doc
        self.headers = headers or {}
        self.known = known
        self.variants = variants
        self.tap = tap
        self.edges = edges
        self.schema = schemathesis.openapi.from_dict(schema_doc)
        self.findings = Findings()
        self.client = httpx.Client(base_url=base_url, timeout=60)
        self.requests = 0
        self.statuses: dict[int, int] = {}

    def known_values(self, path: str, name: str) -> list[Any]:
        """Known ids for a path parameter: by the path up to it (``/clusters/{code}``), else by name."""
        marker = "{" + name + "}"
        prefix = path[: path.index(marker) + len(marker)] if marker in path else ""
        return list(self.known.get(prefix) or self.known.get(name) or [])

    def with_known(self, params: Any) -> Any:
        """Query parameters or body fields given a known value by name (a jurisdiction, a key)."""
        if not isinstance(params, dict):
            return params
        return {k: self.known[k][0] if self.known.get(k) and k in params else v for k, v in params.items()}

    # -- one request, checked --

    def send(self, operation: Any, label: str, slot: str, value: Any, *, path_parameters: dict[str, Any],
             query: dict[str, Any], headers: dict[str, Any], body: Any, media_type: str | None) -> int:
        from schemathesis.core.failures import FailureGroup
        from schemathesis.specs.openapi.checks import response_schema_conformance

        cid = f"fuzz-{uuid.uuid4().hex[:16]}"
        mark = self.tap.mark()
        path = operation.path
        for name, v in path_parameters.items():
            path = path.replace("{" + name + "}", quote(_form_value(v), safe=""))
        sent_headers = {k: str(v) for k, v in headers.items() if v is not None}
        sent_headers.update(self.headers)
        sent_headers["X-Correlation-ID"] = cid
        content: bytes | None = None
        if body is not None and media_type:
            sent_headers["Content-Type"] = media_type
            content = urlencode(_form_pairs(body)).encode() if "form" in media_type else _encode_json(body)
        url = path + ("?" + urlencode(_query_pairs(query)) if query else "")
        try:
            sent_headers_ok = {k: v for k, v in sent_headers.items() if header_safe(v)}
            try:
                resp = self.client.request(operation.method.upper(), url, content=content, headers=sent_headers_ok)
            except httpx.TransportError:  # a keep-alive connection the server closed after a 500: once more
                resp = self.client.request(operation.method.upper(), url, content=content, headers=sent_headers_ok)
        except httpx.InvalidURL:
            return 414  # longer than any client sends (httpx's limit is 64 KiB)
        except httpx.HTTPError as exc:
            self.findings.add(label, slot, value, f"{operation.method.upper()} {url[:300]}", f"no response: {exc!r}", "")
            return 599
        self.requests += 1
        self.statuses[resp.status_code] = self.statuses.get(resp.status_code, 0) + 1
        request_text = f"{operation.method.upper()} {url[:400]}" + (f" body={content[:400]!r}" if content else "")
        if resp.status_code >= 500 and not (label == "GET /readyz" and resp.status_code == 503):
            self.findings.add(label, slot, value, request_text, f"{resp.status_code} {resp.text[:200]}",
                              self.tap.traceback_since(mark))
            return resp.status_code
        case = operation.Case(path_parameters=path_parameters, query=query, headers=headers or None,
                              body=body if body is not None else _not_set(), media_type=media_type)
        try:
            case.validate_response(resp, checks=[response_schema_conformance])
        except (AssertionError, FailureGroup, Exception) as exc:  # noqa: BLE001 - a finding, reported below
            self.findings.add(label, slot, value, request_text,
                              f"{resp.status_code} response does not conform to its schema: {str(exc)[:300]}", "")
        return resp.status_code

    # -- phase 1: Schemathesis with edge mutations --

    def generate(self, operation: Any, op: dict[str, Any], max_examples: int) -> list[Base]:
        from hypothesis import HealthCheck, Phase, given, settings
        from hypothesis import strategies as st

        label = operation.label
        bases: list[Base] = []
        slots = operation_slots(self.doc, op, None)
        path_names = [s.key[0] for s in slots if s.location == "path"]
        mutations = st.lists(st.tuples(st.sampled_from(slots), st.sampled_from(ALL_EDGES)), max_size=2) if slots else st.just([])
        known = {n: self.known_values(operation.path, n) for n in path_names}
        known_draw = st.fixed_dictionaries({n: st.sampled_from(v) for n, v in known.items() if v})

        @settings(max_examples=max_examples, deadline=None, derandomize=True, database=None,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(), use_known=st.booleans(), known=known_draw,
               mutations=mutations)
        def run(case: Any, use_known: bool, known: dict[str, Any], mutations: list[tuple[Slot, Any]]) -> None:
            pp = dict(case.path_parameters or {})
            query, headers = dict(case.query or {}), {k: v for k, v in (case.headers or {}).items()}
            body = case.body if not _is_not_set(case.body) else None
            if use_known:
                pp.update(known)
                query, body = self.with_known(query), self.with_known(body)
            original = Base(dict(pp), dict(query), dict(headers), copy.deepcopy(body), case.media_type, ok=False)
            slot_label, value = "generated", None
            for slot, v in mutations:
                slot_label, value = slot.label, v
                if slot.location == "path":
                    pp[slot.key[0]] = v
                elif slot.location == "query":
                    query[slot.key[0]] = v
                elif slot.location == "header":
                    headers[slot.key[0]] = v if isinstance(v, str) and header_safe(v) else "x"
                elif isinstance(body, dict):
                    body = set_in(body, slot.key, v)
            status = self.send(operation, label, slot_label, value, path_parameters=pp, query=query,
                               headers=headers, body=body, media_type=case.media_type)
            if not mutations:
                original.ok = status < 300
                bases.append(original)

        try:
            run()
        except Exception as exc:  # noqa: BLE001 - a case that cannot even be generated is a finding too
            self.findings.add(label, "generation", None, label, f"could not generate cases: {str(exc)[:300]}", "")
        return bases

    # -- phase 2: every slot, every edge --

    def sweep(self, operation: Any, op: dict[str, Any], bases: list[Base]) -> None:
        base = max(bases, key=Base.richness) if bases else Base({}, {}, {}, None, None, ok=False)
        path_params = {s.key[0]: s for s in operation_slots(self.doc, op, None) if s.location == "path"}
        for name in path_params:
            values = self.known_values(operation.path, name)
            if values:
                base.path_parameters[name] = values[0]
            base.path_parameters.setdefault(name, "x")
        base.query, base.body = self.with_known(base.query), self.with_known(base.body)
        media_types = list(((op.get("requestBody") or {}).get("content") or {}).keys())
        if base.media_type is None and media_types:
            base.media_type = media_types[0]
        variants = [dict(base.path_parameters)]
        for name, values in self.variants.items():
            if name in path_params:
                variants = [{**v, name: value} for v in variants for value in values]
        encodings = [base.media_type, *[m for m in media_types if m != base.media_type]] if media_types else [None]
        # each path variant and each encoding once, not every pair (each pair doubled the sweep)
        combos = [(variants[i % len(variants)], encodings[i % len(encodings)])
                  for i in range(max(len(variants), len(encodings)))]
        for n, (pp, media_type) in enumerate(combos):
            later_variant = n > 0 and pp != combos[0][0]
            for slot in operation_slots(self.doc, op, base.body):
                for value in filter(self.edges, slot_values(slot)):
                    if later_variant and not is_rendering_edge(value):
                        continue
                    path_parameters, query, headers = dict(pp), dict(base.query), dict(base.headers)
                    body = copy.deepcopy(base.body)
                    if slot.location == "path":
                        path_parameters[slot.key[0]] = value
                    elif slot.location == "query":
                        query[slot.key[0]] = value
                    elif slot.location == "header":
                        headers[slot.key[0]] = value
                    else:
                        body = set_in(body, slot.key, value)
                    self.send(operation, operation.label, slot.label, value, path_parameters=path_parameters,
                              query=query, headers=headers, body=body, media_type=media_type)


@contextmanager
def edge_formats() -> Iterator[None]:
    """Schemathesis' own ``date``/``date-time`` strings, with the edge values mixed in."""
    import schemathesis
    from hypothesis import strategies as st
    from schemathesis.specs.openapi.formats import get_default_format_strategies

    defaults = get_default_format_strategies()
    edges = {"date-time": EDGE_DATETIMES, "date": [d[:10] for d in EDGE_DATETIMES] + ["2026-02-30", "0000-00-00"]}
    for name, values in edges.items():
        schemathesis.openapi.format(name, st.sampled_from(values) | defaults[name])
    try:
        yield
    finally:
        for name in edges:
            schemathesis.openapi.format(name, defaults[name])


def _not_set() -> Any:
    from schemathesis.core import NOT_SET

    return NOT_SET


def _is_not_set(value: Any) -> bool:
    from schemathesis.core import NOT_SET

    return value is NOT_SET


def _order(label: str) -> int:
    # deletes last, so the ids the other operations are swept with still exist
    return {"GET": 0, "POST": 1, "PUT": 1, "PATCH": 1, "DELETE": 2}.get(label.split(" ", 1)[0], 1)


def fuzz_service(
    base_url: str, *, headers: dict[str, str] | None = None, max_examples: int = 10, sweep: bool = True,
    known: dict[str, list[Any]] | None = None, variants: dict[str, list[Any]] | None = None,
    patch_schema: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    exclude: Callable[[str], bool] = lambda label: False, sweep_exclude: Callable[[str], bool] = lambda label: False,
    edges: Callable[[Any], bool] = lambda value: True,
) -> list[str]:
    """Fuzz every operation of a running service (in this process, so its log can be read back):
    Schemathesis with edge values mixed in, then (``sweep``) every edge in every slot.

    ``known``: values of path parameters that exist (``{"code": ["STREETS"]}``), so that cases get
    past the lookup into the rules; ``variants``: path parameters swept with each value (``{"fmt":
    ["json", "xml"]}``); ``patch_schema``: adds what the document does not say (parameters a route
    reads from the raw request); ``sweep_exclude``: operations only generated for, not swept (the
    same handler mounted twice); ``edges``: the edge values the sweep sends (``is_database_edge``:
    those one database refuses and another stores, for a second run on the other). Returns the failures, grouped, empty when all is well."""
    doc = httpx.get(f"{base_url}/openapi.json", timeout=30).raise_for_status().json()
    if patch_schema is not None:
        doc = patch_schema(doc)
    with LogTap() as tap, edge_formats():
        runner = Runner(base_url, doc, headers=headers, known=known or {}, variants=variants or {}, tap=tap,
                        edges=edges)
        operations = []
        for result in runner.schema.get_all_operations():
            operations.append(result.ok())  # type: ignore[union-attr]  # an invalid operation raises here: a failure too
        for operation in sorted(operations, key=lambda o: _order(o.label)):
            if exclude(operation.label) or operation.label == "GET /readyz":  # 503 is its documented answer
                continue
            op = doc["paths"][operation.path][operation.method.lower()]
            bases = runner.generate(operation, op, max_examples)
            if sweep and not sweep_exclude(operation.label):
                runner.sweep(operation, op, bases)
        runner.client.close()
    statuses = ", ".join(f"{k}: {v}" for k, v in sorted(runner.statuses.items()))
    print(f"fuzzed {base_url}: {len(operations)} operations, {runner.requests} requests ({statuses})")
    return runner.findings.report()
