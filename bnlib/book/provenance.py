"""Where a page's evidence comes from: the records of the runs it reads and the tables it computed
from data, summed up from the records themselves (never written by hand).

Each page ends with `show(session)` (its last cell, `bnlib.book.evidence(session)`): which runs it
reads, whether they are the book's published records (the run store in the repository) or the
reader's own (their cache), the commits, bnlib and torch versions that trained them, the copy of
CIFAR-10, the machines, the dates and the total time of training; and, folded, every record by
name with its folder, so that a figure's records can be found.
"""

from __future__ import annotations

import html as html_text
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from IPython.display import HTML

from bnlib.book import html
from bnlib.book.project import ROOT
from bnlib.book.session import Measured, Session, measurements_read
from bnlib.records import Record, stored_record

# The data copies this project knows by their fingerprint (`bnlib.data`'s content hash of the
# decoded arrays); any other copy is described by its kind.
STORE_WORDS = "the book's published run store"
KNOWN_COPIES = {
    "e00b28a47d65123f": "this project's JPEG re-encoding of CIFAR-10 (cifar10-jpeg.tar.gz, quality 75)",
}
CANONICAL_KINDS = ("cifar-python", "cifar-archive")


@dataclass(frozen=True)
class Evidence:
    """The records a page reads (name, seed, record) and the tables it computed from data."""

    runs: list[tuple[str, int, Record]]
    tables: list[Measured]


def gather(session: Session) -> Evidence:
    """The records of every run this session's page reads (its chapter's `reads`; every chapter's
    for the pages that read them all), as stored now, and the tables it has computed so far."""
    runs = []
    for job in session.jobs():
        name, _, seed = job.name.rpartition(" seed ")
        record = stored_record(job.config)
        if record is not None:
            runs.append((name, int(seed), record))
    return Evidence(runs, measurements_read())


def data_copy(source: dict) -> str:
    """A data copy in words: one this project knows, canonical CIFAR-10, or its kind and fingerprint."""
    fingerprint = source.get("fingerprint", "?")
    if fingerprint in KNOWN_COPIES:
        return KNOWN_COPIES[fingerprint]
    if source.get("kind") in CANONICAL_KINDS:
        return f"canonical CIFAR-10 (fingerprint {fingerprint})"
    return f"a copy of CIFAR-10 of kind {source.get('kind', '?')} (fingerprint {fingerprint})"


def summary(evidence: Evidence) -> str:
    """The provenance of a page's evidence in a few sentences (markdown-free HTML)."""
    records = [record for _, _, record in evidence.runs]
    if not records and not evidence.tables:
        return "This page reads no training run."
    parts = []
    if records:
        origins = Counter(STORE_WORDS if r.origin == "published" else "your cache" for r in records)
        where = " and ".join(f"{n} from {origin}" for origin, n in origins.most_common())
        env = [r.environment for r in records]
        cifar = {r.environment["data"]["fingerprint"]: r.environment["data"] for r in records if r.config.on_cifar}
        dates = sorted(e.get("trained", "") for e in env if e.get("trained"))
        hours = sum(r.wall_time_s for r in records) / 3600
        parts.append(
            f"This page reads {len(records)} training runs: {where}. They were trained by bnlib "
            f"{_listed(e['bnlib'] for e in env)} at commit {_listed(e['git_commit'] for e in env)}, with torch "
            f"{_listed(e['torch'] for e in env)}, on {_listed(_machine(e) for e in env)}"
            + (f", between {dates[0][:16].replace('T', ' ')} and {dates[-1][:16].replace('T', ' ')}" if dates else "")
            + f"; {hours:.2f} hours of training in all (the time each run took, summed)."
            + (f" Data: {_listed(data_copy(s) for s in cifar.values())}." if cifar else "")
        )
    if evidence.tables:
        origins = Counter(t.origin for t in evidence.tables)
        words = {"published": "published with the runs", "cache": "from your cache", "computed": "computed just now"}
        parts.append(
            f"It also reads {len(evidence.tables)} tables computed from data beyond the runs (networks at "
            f"initialisation and the like): {', '.join(f'{n} {words[o]}' for o, n in origins.most_common())}."
        )
    return " ".join(parts)


def listing(evidence: Evidence) -> pd.DataFrame:
    """Every record the page reads, by name: how it ended, its steps and time, and its folder."""
    rows = [
        {
            "run": name,
            "seed": seed,
            "ended": record.status,
            "steps": int(record.final["steps"]),
            "training time (s)": round(record.wall_time_s, 1),
            "from": "published" if record.origin == "published" else "your cache",
            "record": _where(record.path),
        }
        for name, seed, record in evidence.runs
    ]
    rows += [
        {"run": f"table: {t.name}", "seed": t.config.seed, "ended": "", "steps": 0, "training time (s)": 0.0}
        | {"from": t.origin, "record": _where(t.path)}
        for t in evidence.tables
    ]
    return pd.DataFrame(rows)


def show(session: Session) -> HTML:
    """A page's closing cell: where its evidence comes from, and every record, folded."""
    evidence = gather(session)
    table = listing(evidence)
    folded = (
        f"<details><summary>The {len(table)} records, by name</summary>{html.table_html(table)}</details>"
        if len(table)
        else ""
    )
    return HTML(f"<p><strong>Evidence.</strong> {html_text.escape(summary(evidence))}</p>{folded}")


def _machine(env: dict) -> str:
    processor = env.get("processor", "a CPU")
    capability = f", {env['cpu_capability']}" if env.get("cpu_capability") else ""
    return f"{processor}{capability}, {env.get('device', '?')}"


def _listed(values) -> str:
    distinct = list(dict.fromkeys(values))
    return ", ".join(str(v) for v in distinct)


def _where(path: Path | None) -> str:
    if path is None:
        return ""
    try:
        return path.relative_to(ROOT).as_posix()
    except ValueError:
        return str(path)
