"""A QIIME 2-like amplicon pipeline, run in parallel by q2pconf (no QIIME 2 needed).

Per sample: simulate reads, then denoise them (CPU-heavy, sent to the `htex` process pool)
while a quality summary runs on the `default` thread pool. The denoised tables are merged,
classified against a reference (CPU-heavy, `htex`), and a nested sub-pipeline computes
diversity per group of samples. The whole run is timed in parallel and then serially.

    python examples/amplicon.py                       # the config QIIME 2 would find
    QIIME2_CONFIG=my.toml python examples/amplicon.py # another machine's config
    python examples/amplicon.py --parallel-config cluster.toml --samples 24
"""
from __future__ import annotations

import argparse
import collections
import math
import random
import time
from collections.abc import Callable

import q2pconf
from q2pconf import parallel_pipeline, step

BASES = "ACGT"
K = 6
ROUNDS = 2


@step
def simulate_reads(sample: str, depth: int) -> list[tuple[str, str]]:
    """FASTQ-like (sequence, quality) reads of one sample: a few true variants, with errors
    where the base quality is low."""
    rng = random.Random(sample)
    variants = [_sequence(random.Random(f"variant{v}"), 120) for v in range(12)]
    reads = []
    for _ in range(depth):
        read = list(rng.choice(variants[: 4 + len(sample) % 8]))
        quality = [max(2, min(41, round(rng.gauss(32, 6)))) for _ in read]
        for i, phred in enumerate(quality):
            if phred < 20:
                read[i] = rng.choice(BASES)
        reads.append(("".join(read), "".join(chr(33 + q) for q in quality)))
    return reads


@step(executor="htex")
def denoise(sample: str, reads: list[tuple[str, str]]) -> dict[str, int]:
    """Cluster reads around abundant sequences, refining the centres a few rounds (CPU-heavy)."""
    counts = collections.Counter(sequence for sequence, _ in reads)
    centres: list[str] = []
    for read, _ in counts.most_common():
        if all(_distance(c, read) > 12 for c in centres):
            centres.append(read)
    for _ in range(ROUNDS):
        clusters: dict[str, collections.Counter[str]] = {c: collections.Counter() for c in centres}
        for read, count in counts.items():
            clusters[min(centres, key=lambda c: _distance(c, read))][read] += count
        centres = [cluster.most_common(1)[0][0] for cluster in clusters.values() if cluster]
    return {cluster.most_common(1)[0][0]: sum(cluster.values())
            for cluster in clusters.values() if cluster}


@step
def quality_summary(sample: str, reads: list[tuple[str, str]]) -> dict[str, object]:
    """Read count, GC content and the mean Phred quality at each position (as
    `demux summarize` shows it)."""
    length = max(len(sequence) for sequence, _ in reads)
    totals = [0] * length
    for _, quality in reads:
        for position, symbol in enumerate(quality):
            totals[position] += ord(symbol) - 33
    gc = sum(sequence.count("G") + sequence.count("C") for sequence, _ in reads)
    bases = sum(len(sequence) for sequence, _ in reads)
    return {"reads": len(reads), "gc": round(gc / bases, 4),
            "profile": [round(total / len(reads), 1) for total in totals]}


@step
def merge(samples: list[str], tables: list[dict[str, int]]) -> dict[str, dict[str, int]]:
    """A feature table: feature -> {sample: count}."""
    merged: dict[str, dict[str, int]] = collections.defaultdict(dict)
    for sample, table in zip(samples, tables):
        for feature, count in table.items():
            merged[feature][sample] = count
    return dict(merged)


@step(executor="htex", outputs=2)
def classify(features: list[str]) -> tuple[dict[str, str], float]:
    """Nearest reference by shared k-mers (CPU-heavy); returns taxonomy and mean confidence."""
    reference = {f"Taxon_{t}": _sequence(random.Random(f"variant{t}"), 120) for t in range(12)}
    reference_kmers = {name: _kmers(seq) for name, seq in reference.items()}
    taxonomy, confidence = {}, []
    for feature in features:
        kmers = _kmers(feature)
        for _ in range(1500):  # bootstrap-like repeats, as classifiers do
            scores = {name: len(kmers & ref) for name, ref in reference_kmers.items()}
        name = max(scores, key=scores.__getitem__)
        taxonomy[feature[:12]] = name
        confidence.append(scores[name] / max(1, len(kmers)))
    return taxonomy, sum(confidence) / max(1, len(confidence))


@step
def alpha(sample: str, table: dict[str, dict[str, int]]) -> float:
    """Shannon diversity of one sample."""
    counts = [row[sample] for row in table.values() if sample in row]
    total = sum(counts)
    return -sum(c / total * math.log(c / total) for c in counts if c)


@step
def beta(samples: list[str], table: dict[str, dict[str, int]]) -> float:
    """Mean Bray-Curtis dissimilarity between the samples of a group."""
    pairs = [(a, b) for i, a in enumerate(samples) for b in samples[i + 1:]]
    values = []
    for a, b in pairs:
        shared = sum(min(row.get(a, 0), row.get(b, 0)) for row in table.values())
        size = sum(row.get(a, 0) + row.get(b, 0) for row in table.values())
        values.append(1 - 2 * shared / size if size else 0.0)
    return sum(values) / max(1, len(values))


@parallel_pipeline
def diversity(samples: list[str], table: dict[str, dict[str, int]]) -> dict[str, object]:
    """A nested pipeline, one per group: groups overlap in time."""
    return {"alpha": {s: alpha(s, table) for s in samples}, "beta": beta(samples, table)}


@parallel_pipeline(report=True)  # every run writes a trace; report=True adds the HTML report
def amplicon(samples: list[str], depth: int) -> dict[str, object]:
    reads = {s: simulate_reads(s, depth) for s in samples}
    tables = [denoise(s, reads[s]) for s in samples]
    quality = {s: quality_summary(s, reads[s]) for s in samples}
    table = merge(samples, tables)
    taxonomy, confidence = classify(features(table))
    groups = {"gut": samples[::2], "skin": samples[1::2]}
    return {"taxonomy": taxonomy, "confidence": confidence, "quality": quality,
            "diversity": {g: diversity(members, table) for g, members in groups.items()}}


@step
def features(table: dict[str, dict[str, int]]) -> list[str]:
    return sorted(table)


def _sequence(rng: random.Random, length: int) -> str:
    return "".join(rng.choice(BASES) for _ in range(length))


def _distance(a: str, b: str) -> int:
    return sum(x != y for x, y in zip(a, b))


def _kmers(sequence: str) -> set[str]:
    return {sequence[i:i + K] for i in range(len(sequence) - K + 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=12, help="number of samples (12)")
    parser.add_argument("--depth", type=int, default=3000, help="reads per sample (3000)")
    parser.add_argument("--no-serial", action="store_true", help="skip the serial comparison")
    q2pconf.add_parallel_arguments(parser)  # q2cli's --parallel and --parallel-config PATH
    parser.add_argument("--serial-only", dest="parallel", action="store_false",
                        help="run only serially, as q2cli does without --parallel")
    parser.set_defaults(parallel=True)  # this demo is about parallel runs: on unless told
    args = parser.parse_args()
    samples = [f"S{i:02d}" for i in range(1, args.samples + 1)]

    settings = q2pconf.config_from_args(args)
    if settings is None:
        print(f"serial: {_timed(lambda: amplicon.serial(samples, args.depth))[1]:.2f} s")
        return
    print(f"config: {settings.path or 'built-in default (in memory)'} (source: {settings.source})")
    for label in settings.labels:
        workers = settings.workers(label)
        print(f"  executor {label!r}: {settings.executor_class(label)}, {workers} workers")

    with q2pconf.ParallelConfig(settings):
        began, started = time.time(), time.perf_counter()
        result = amplicon(samples, args.depth)
        parallel = time.perf_counter() - started
    _report(amplicon.history, began, result)
    print(f"parallel: {parallel:.2f} s (including executor start-up)")
    print(f"trace:  {amplicon.trace_path}\nreport: {amplicon.report_path}")
    if not args.no_serial:
        serial, elapsed = _timed(lambda: amplicon.serial(samples, args.depth))
        assert serial == result, "serial and parallel runs disagree"
        print(f"serial:   {elapsed:.2f} s (same result) -> speed-up {elapsed / parallel:.2f}x")
    if q2pconf.usable_cpus() <= 2:
        print(f"(this machine has {q2pconf.usable_cpus()} usable CPUs: the vendored default "
              "gives one thread and one HTEX worker (usable CPUs - 1, as in QIIME 2), and the "
              "HTEX needs about a second to start; the speed-up grows with CPUs and --samples)")


def _timed(run: Callable[[], object]) -> tuple[object, float]:
    started = time.perf_counter()
    result = run()
    return result, time.perf_counter() - started


def _report(history: list[q2pconf.StepRecord], began: float,
            result: dict[str, object]) -> None:
    """What ran where, and when (seconds after the pipeline started): the spans overlap."""
    print(f"\n{'step':<16}{'runs':>5}  {'executor':<10}{'from s':>7}{'to s':>7}")
    spans: dict[tuple[str, str], list[float]] = {}
    for record in history:
        start, end = (record.started or began) - began, (record.finished or began) - began
        low, high, runs = spans.get((record.name, record.executor), (start, end, 0))
        spans[(record.name, record.executor)] = [min(low, start), max(high, end), runs + 1]
    for (name, label), (low, high, runs) in spans.items():
        print(f"{name:<16}{int(runs):>5}  {label:<10}{low:>7.2f}{high:>7.2f}")
    taxa = collections.Counter(result["taxonomy"].values())  # type: ignore[union-attr]
    print(f"\n{len(result['taxonomy'])} features, {len(taxa)} taxa, "  # type: ignore[arg-type]
          f"mean confidence {result['confidence']:.2f}")


if __name__ == "__main__":
    main()
