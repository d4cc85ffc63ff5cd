"""A central tier routed by model (issue 17): one edge Millwatch whose `exporters.otlp` has three
endpoints, three real central Millwatch instances. Each model's data lands on exactly one
central, the one rendezvous hashing names; while one central is stopped its models go to the
others, and nothing acknowledged is lost or doubled."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from collector import free_ports
from otlp import inference_attrs, log_record, logs_request
from rawhttp import send_ok
from test_forwarding import Pinned, own_metric, wait_for

MODELS = [f"line-{k}-model" for k in range(12)]
BASE_NS = time.time_ns() - 600 * 10**9


def owner(urls: list[str], live: list[bool], model: str) -> int:
    """The exporter's choice, computed here from its documented rule: the highest first 8 bytes
    (big-endian) of SHA-256(url, 0, model) among the live endpoints."""
    def score(url: str) -> int:
        return int.from_bytes(hashlib.sha256(url.encode() + b"\0" + model.encode()).digest()[:8], "big")
    return max((i for i in range(len(urls)) if live[i]), key=lambda i: score(urls[i]))


def batch(phase: str, r: int) -> tuple[object, dict[str, list[str]]]:
    """One request with two inference events of every model."""
    records, ids = [], {}
    for m, model in enumerate(MODELS):
        for k in range(2):
            iid = f"{phase}-{r:03}-{m:02}-{k}"
            i = r * 100 + m * 2 + k
            records.append(log_record(BASE_NS + i * 1000, inference_attrs(iid, i, model=model),
                                      event_name="ml.inference"))
            ids.setdefault(model, []).append(iid)
    return logs_request(records, {"service.name": "plant-a", "host.name": "edge-1"}), ids


def test_three_centrals_each_model_on_one_and_a_stopped_ones_models_move(tmp_path: Path):
    ports = free_ports(12)
    centrals = [Pinned(tmp_path / f"central-{i}", ports[3 * i:3 * i + 3]) for i in range(3)]
    urls = [f"http://127.0.0.1:{c.grpc_port}/" for c in centrals]
    edge = Pinned(tmp_path / "edge", ports[9:], f"""
exporters:
  otlp:
    - name: central
      endpoint: {urls[0]}
      routing: {{ attribute: ml.model.name, more_endpoints: [{urls[1]}, {urls[2]}] }}
      batch: {{ max_items: 200, max_delay: 50ms }}
      retry: {{ min_backoff: 50ms, max_backoff: 500ms }}
      queue: {{ dir: {tmp_path / "q"} }}
""")
    everyone = [edge, *centrals]
    acked: dict[str, dict[str, list[str]]] = {"up": {}, "down": {}, "back": {}}

    def send_phase(phase: str, rounds: int) -> None:
        for r in range(rounds):
            req, ids = batch(phase, r)
            send_ok(edge, req)
            for model, i in ids.items():
                acked[phase].setdefault(model, []).extend(i)

    def drained() -> None:
        wait_for("the edge's queue to drain",
                 lambda: own_metric(edge, "millwatch_otlp_exporter_queue_items") == 0, c=edge)

    try:
        for c in everyone:
            c.start()
        send_phase("up", 10)
        drained()
        # The central that owns most models is stopped; its models go to their runners-up.
        owners = {m: owner(urls, [True] * 3, m) for m in MODELS}
        stopped = max(range(3), key=lambda i: sum(o == i for o in owners.values()))
        assert any(o == stopped for o in owners.values())
        centrals[stopped].stop_clean()
        send_phase("down", 10)
        drained()
        assert own_metric(edge, "millwatch_otlp_exporter_requests_retried_total") > 0
        centrals[stopped].start()
        # The edge tries a failed endpoint again after its backoff, at most max_backoff (500ms)
        # after the last failure; data sent before that still goes to the runners-up.
        time.sleep(1.0)
        send_phase("back", 10)
        drained()
        assert own_metric(edge, "millwatch_otlp_exporter_items_rejected_total") == 0
        edge.stop_clean()
        for c in centrals:
            if c.running:
                c.stop_clean()

        landed: dict[str, list[tuple[int, str]]] = {}
        for i, c in enumerate(centrals):
            db = c.db()
            try:
                for model, iid in db.execute(
                        "SELECT model, inference_id FROM inferences ORDER BY event_id").fetchall():
                    landed.setdefault(model, []).append((i, iid))
            finally:
                db.close()

        live_while_down = [i != stopped for i in range(3)]
        for model in MODELS:
            rows = landed.get(model, [])
            ids = [iid for _, iid in rows]
            want = acked["up"][model] + acked["down"][model] + acked["back"][model]
            assert sorted(ids) == sorted(want), f"{model}: every acknowledged event exactly once"
            for phase, live in (("up", [True] * 3), ("down", live_while_down), ("back", [True] * 3)):
                where = {i for i, iid in rows if iid.startswith(phase + "-")}
                assert where == {owner(urls, live, model)}, f"{model} {phase}: on {where}"
                # In order on its central.
                on_it = [iid for _, iid in rows if iid.startswith(phase + "-")]
                assert on_it == acked[phase][model], f"{model} {phase}: order"
        moved = [m for m in MODELS if owners[m] == stopped]
        print(f"central {stopped} owned {len(moved)} of {len(MODELS)} models; they moved and came back")
    finally:
        for c in everyone:
            if c.running:
                c.kill()
