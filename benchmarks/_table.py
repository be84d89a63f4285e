"""``python -m benchmarks table``: the README's figures table, from ``results/*.json``.

The README's "Current figures" table is generated, never typed: each row of
:data:`ROWS` names a suite, the metric's label, how its figure is written (a format
string over the suite's ``metrics``) and its target (``{met}`` is ``met`` or
``missed``, from the result file's own verdict on the row's first metric). Under the
table, one line names the commit each suite was measured on (``commit.sha`` of its
result file). ``python -m benchmarks table`` prints the block; ``--write`` puts it in
README.md in place of the old one. ``tests/test_benchmark_figures.py`` checks that
README.md holds exactly what this prints, so a figure can be neither typed by hand nor
left behind by a new run: after full runs, ``python -m benchmarks table --write``.

docs/benchmarks.md shows each suite's rows again, under its own heading, between
``<!-- figures: SUITE -->`` and ``<!-- /figures -->``: ``--write`` fills those too.

A row whose note stops being true after a new run (``at the edge``, ``(load)``) is
edited here, in :data:`ROWS`, not in the README.
"""

from __future__ import annotations

import json
import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from benchmarks._report import REPOSITORY, Target

__all__ = [
    "HEADER",
    "ROWS",
    "Row",
    "commits_line",
    "figure_problems",
    "main",
    "readme_block",
    "render",
    "render_suite",
    "write_documents",
]

RESULTS: Final = Path(__file__).with_name("results")
README: Final = REPOSITORY / "README.md"
DOCS: Final = REPOSITORY / "docs" / "benchmarks.md"
HEADER: Final = "| suite | metric | figure | target |\n|---|---|---|---|\n"
COMMITS_PREFIX: Final = "Measured on commits: "


@dataclass(frozen=True)
class Row:
    """One line of the table. ``figure`` and ``target`` are ``str.format`` templates over
    the suite's metrics (``target`` also gets ``met``: met or missed). ``check``: the
    target of the first metric when its result file records none (an older file)."""

    suite: str
    label: str
    figure: str
    target: str
    check: Target | None = None

    def metrics(self) -> list[str]:
        """The metric names the figure is written from, in order."""
        fields = (name for _, name, _, _ in string.Formatter().parse(self.figure) if name)
        return list(dict.fromkeys(fields))


_R = Row
ROWS: Final[tuple[Row, ...]] = (
    _R("streams", "`append_1_full_vs_es_sqlite` (one-event saves, both FULL)",
       "**{append_1_full_vs_es_sqlite:.2f}** ({append_1_ours_full_events_per_s:,.0f} vs "
       "{append_1_es_sqlite_full_events_per_s:,.0f} ev/s)", "≥ 1.0 {met}"),
    _R("streams", "`append_1_default_vs_es_sqlite` (ours NORMAL, theirs FULL)",
       "{append_1_default_vs_es_sqlite:.2f} ({append_1_ours_normal_events_per_s:,.0f} vs "
       "{append_1_es_sqlite_full_events_per_s:,.0f} ev/s)", "reported"),
    _R("streams", "`append_1_vs_popo` (ours NORMAL ÷ in-memory)",
       "**{append_1_vs_popo:.2f}** ({append_1_ours_normal_events_per_s:,.0f} vs "
       "{append_1_popo_events_per_s:,.0f} ev/s)", "≥ 0.5 {met}"),
    _R("streams", "`append_100_vs_raw_sqlite` (100-event batches)",
       "**{append_100_vs_raw_sqlite:.2f}** ({append_100_ours_events_per_s:,.0f} vs "
       "{append_100_raw_sqlite_events_per_s:,.0f} ev/s)", "≥ 0.6 {met}"),
    _R("streams", "`read_vs_es_sqlite` (all notifications + every aggregate)",
       "**{read_vs_es_sqlite:.2f}** ({read_ours_ms:,.0f} vs {read_es_sqlite_ms:,.0f} ms)",
       "≥ 1.5 {met}"),
    _R("streams", "`bytes_per_event_vs_es_sqlite`",
       "**{bytes_per_event_vs_es_sqlite:.2f}** ({bytes_per_event_ours:,.0f} vs "
       "{bytes_per_event_es_sqlite:,.0f} B)", "≤ 1.5 {met}"),
    _R("streams", "`wake_cross_p50_ms` / p99 (commit → subscriber in another process)",
       "{wake_cross_p50_ms:.2f} / {wake_cross_p99_ms:.2f} ms", "≤ 2 / ≤ 5 {met}"),
    _R("streams", "`transcoder_msgspec_vs_json` (mapper round trips)",
       "{transcoder_msgspec_vs_json:.2f} ({transcoder_msgspec_round_trips_per_s:,.0f} vs "
       "{transcoder_json_round_trips_per_s:,.0f} /s)", "faster: {met}"),
    _R("domain", "`add_node_p50_ms_100k` / p99",
       "{add_node_p50_ms_100k:.3f} / {add_node_p99_ms_100k:.3f} ms", "≤ 1.0 / ≤ 5 {met}"),
    _R("domain", "`add_node_growth_1k_to_100k` (p50 at 100k ÷ at 1k)",
       "{add_node_growth_1k_to_100k:.2f}", "≤ 1.5 {met}"),
    _R("domain", "`add_edge_p50_ms_100k`", "{add_edge_p50_ms_100k:.3f} ms", "≤ 1.0 {met}"),
    _R("domain", "`cold_load_s_100k` (fresh process: open → first write committed)",
       "{cold_load_s_100k:.2f} s", "≤ 1.0 {met}"),
    _R("domain", "`ingest_call_events_per_s` (one call event per transaction)",
       "{ingest_call_events_per_s:,.0f} /s", "≥ 5,000 {met}"),
    _R("domain", "`ingest_batch_vs_raw_sqlite` (one-run batches of 20 call events)",
       "{ingest_batch_vs_raw_sqlite:.2f} ({ingest_batch_events_per_s:,.0f} vs "
       "{ingest_batch_raw_sqlite_events_per_s:,.0f} /s)", "≥ 0.35 {met}"),
    _R("domain", "`bytes_per_call_event` (file bytes ÷ the call events' compact JSON, "
       "10-step runs)", "{bytes_per_call_event:.2f} (4.98 before issue 17)",
       "≤ 2.5 {met}"),
    _R("domain", "`stored_events_per_call_event`", "{stored_events_per_call_event:.2f}",
       "≤ 1.1 {met}"),
    _R("domain", "`subscription_bytes_growth` (bytes per output at 1,000 outputs ÷ at 10)",
       "{subscription_bytes_growth:.2f} (114 before issue 17)", "≤ 1.2 {met}"),
    _R("domain", "`ingest_history_flatness` (events/s with 1M calls ÷ with 10k)",
       "{ingest_history_flatness:.2f}", "≥ 0.8 {met}", Target(">=", 0.8)),
    _R("domain", "`ingest_p99_growth` (batch p99 at 1M ÷ at 10k)",
       "{ingest_p99_growth:.2f}", "≤ 2 {met}"),
    _R("domain", "`cold_start_ms_1m_calls` / `rss_mb_1m_calls`",
       "{cold_start_ms_1m_calls:.0f} ms / {rss_mb_1m_calls:.0f} MB", "≤ 150 / ≤ 250 {met}"),
    _R("projections", "`catchup_vs_raw_sqlite` (metagraph projector ÷ stdlib sqlite3)",
       "{catchup_vs_raw_sqlite:.2f} ({catchup_events_per_s:,.0f} vs "
       "{catchup_raw_sqlite_rows_per_s:,.0f} /s)", "≥ 0.5 {met}"),
    _R("projections", "`e2e_cross_p50_ms` / p99 (commit → projection → subscriber elsewhere)",
       "{e2e_cross_p50_ms:.2f} / {e2e_cross_p99_ms:.2f} ms", "≤ 5 / ≤ 25 {met}"),
    _R("projections", "`asof_10k_calls_ms` (a 10,000-call run as of a middle offset)",
       "{asof_10k_calls_ms:.0f} ms", "≤ 200 {met}"),
    _R("projections", "`idle_cpu_pct_1000_tenants` / `wake_ms_1000_tenants`",
       "{idle_cpu_pct_1000_tenants:.2f} % / {wake_ms_1000_tenants:.1f} ms",
       "≤ 5 / ≤ 50 {met}"),
    _R("projections", "`idle_cpu_pct_10k_tenants_cli` / `wake_ms_10k_tenants_cli` (the real "
       "`projector run`, 10,000 tenants; caught up in, RSS)",
       "{idle_cpu_pct_10k_tenants_cli:.2f} % / {wake_ms_10k_tenants_cli:.1f} ms "
       "({catch_up_s_10k_tenants_cli:.0f} s, {rss_mb_10k_tenants_cli:.0f} MB)",
       "≤ 5 / ≤ 50 {met}"),
    _R("cli", "`cli_start_vs_python` (`graphstore --help` ÷ `python -c pass`)",
       "{cli_start_vs_python:.2f} ({cli_help_ms:.0f} vs {python_pass_ms:.0f} ms)",
       "≤ 8 {met}"),
    _R("cli", "`cli_status_vs_python` / `cli_runs_list_vs_python`",
       "{cli_status_vs_python:.1f} / {cli_runs_list_vs_python:.1f} ({cli_status_ms:.0f} / "
       "{cli_runs_list_ms:.0f} ms)", "≤ 10 {met}"),
    _R("serve", "`http_ingest_vs_inprocess` (100-event batches)",
       "{http_ingest_vs_inprocess:.2f} ({http_ingest_events_per_s:,.0f} vs "
       "{inprocess_ingest_events_per_s:,.0f} ev/s)", "≥ 0.5 {met}"),
    _R("serve", "`sse_fanout_p50_ms` / p99 (200 SSE subscribers)",
       "{sse_fanout_p50_ms:.1f} / {sse_fanout_p99_ms:.1f} ms", "≤ 10 / ≤ 50 {met}"),
    _R("serve", "`event_target_inprocess_p50_us` / `event_target_cross_p50_ms`",
       "{event_target_inprocess_p50_us:.1f} µs / {event_target_cross_p50_ms:.2f} ms",
       "≤ 50 / ≤ 2 {met}"),
    _R("relay", "`relay_vs_local_catchup` (relayed to JetStream ÷ local catch-up)",
       "{relay_vs_local_catchup:.2f} ({relay_events_per_s:,.0f} vs "
       "{local_catchup_events_per_s:,.0f} ev/s)", "≥ 0.5 {met}"),
    _R("relay", "`remote_e2e_p50_ms` / p99 (tenant commit → remote projection row)",
       "{remote_e2e_p50_ms:.1f} / {remote_e2e_p99_ms:.1f} ms", "≤ 10 / ≤ 50 {met}"),
    _R("relay", "`spoke_ingest_vs_inprocess` (spoke → JetStream → hub ingester)",
       "{spoke_ingest_vs_inprocess:.2f} ({spoke_ingest_events_per_s:,.0f} vs "
       "{inprocess_batched_ingest_events_per_s:,.0f} ev/s)", "≥ 0.5 {met}"),
    _R("backup", "`backup_vs_file_copy` (MB/s ÷ a plain copy + fsync)",
       "{backup_vs_file_copy:.2f} ({backup_mb_per_s:,.0f} vs {file_copy_mb_per_s:,.0f} MB/s)",
       "≥ 0.5 {met}"),
    _R("backup", "`writer_p99_during_backup_ratio`",
       "{writer_p99_during_backup_ratio:.2f} ({writer_p99_during_backup_ms:.2f} vs "
       "{writer_p99_quiet_backup_ms:.2f} ms)", "≤ 2 {met}"),
    _R("restore", "`restore_nats_vs_relay` (1M events restored from JetStream ÷ relayed)",
       "{restore_nats_vs_relay:.2f} ({restore_events_per_s:,.0f} vs "
       "{relay_events_per_s:,.0f} ev/s)", "≥ 0.5 {met}"),
    _R("restore", "`verify_s_per_1m_events`", "{verify_s_per_1m_events:.0f} s", "reported"),
    _R("retention", "`retire_vs_ingest` (runs/s retired ÷ ingested, same runs)",
       "{retire_vs_ingest:.2f}", "≥ 0.5 {met}"),
    _R("retention", "`writer_p99_during_retention_ratio` (a writer's batch p99 during a "
       "pass ÷ quiet; a projection runner beside it in both)",
       "{writer_p99_during_retention_ratio:.2f} ({writer_p99_during_retention_ms:.0f} vs "
       "{writer_p99_quiet_retention_ms:.0f} ms)", "≤ 2 {met}"),
    _R("retention", "`file_after_retiring_90pct` (file bytes after retiring 90% ÷ before)",
       "{file_after_retiring_90pct:.3f}", "≤ 0.15 {met}"),
    _R("retention", "`retention_pass_flatness` (runs/s retiring from a large history ÷ "
       "from a small one, both files cached; cold: neither)",
       "{retention_pass_flatness:.2f} (cold: {retention_pass_flatness_cold:.2f})",
       "≥ 0.8 {met}"),
    _R("retention", "`archive_write_flatness` (runs/s of a 25-run archive write into a "
       "month of 100,000 runs ÷ of 1,000)", "{archive_write_flatness:.2f}", "≥ 0.8 {met}"),
)  # fmt: skip


def _results() -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json"))}


def _verdict(result: dict[str, Any], row: Row) -> str:
    """``met`` when the result met every target among the row's metrics, else ``missed``."""
    targets = result.get("targets", {})
    verdicts = [targets[name]["met"] for name in row.metrics() if name in targets]
    if not verdicts and row.check is not None:
        verdicts = [row.check.met(result["metrics"][row.metrics()[0]])]
    if not verdicts and "{met}" in row.target:
        raise ValueError(f"no target for {row.metrics()} in results/{row.suite}.json: add one")
    return "met" if all(verdicts) else "missed"


def commits_line(results: dict[str, dict[str, Any]]) -> str:
    """``Measured on commits: streams f126ebb, ...`` for the suites of :data:`ROWS`."""
    named = []
    for suite in dict.fromkeys(row.suite for row in ROWS):
        commit = results[suite].get("commit") or {}
        sha = str(commit.get("sha") or "unknown")[:7]
        named.append(f"{suite} {sha}{' (uncommitted changes)' if commit.get('dirty') else ''}")
    return COMMITS_PREFIX + ", ".join(named) + " (`python -m benchmarks table`)."


def _cells(results: dict[str, dict[str, Any]], row: Row) -> tuple[str, str]:
    """The row's figure and target, written from its suite's result."""
    result = results[row.suite]
    figure = row.figure.format_map(result["metrics"])
    target = row.target.format_map({**result["metrics"], "met": _verdict(result, row)})
    return figure, target


def render(results: dict[str, dict[str, Any]] | None = None) -> str:
    """The table and the commits line, from ``results`` (default: ``results/*.json``)."""
    results = _results() if results is None else results
    lines = []
    for row in ROWS:
        figure, target = _cells(results, row)
        lines.append(f"| {row.suite} | {row.label} | {figure} | {target} |\n")
    return HEADER + "".join(lines) + "\n" + commits_line(results) + "\n"


def render_suite(suite: str, results: dict[str, dict[str, Any]] | None = None) -> str:
    """One suite's rows, for its section of docs/benchmarks.md, with the run they come
    from (commit, rounds, seconds)."""
    results = _results() if results is None else results
    result = results[suite]
    commit = result.get("commit") or {}
    sha = str(commit.get("sha") or "unknown")[:7]
    run = "quick" if result.get("quick") else "full"
    lines = [
        f"<!-- figures: {suite} -->\n",
        "| metric | figure | target |\n|---|---|---|\n",
        *(
            "| {} | {} | {} |\n".format(row.label, *_cells(results, row))
            for row in ROWS
            if row.suite == suite
        ),
        f"\n{run} run, {result.get('repeats')} rounds, medians; commit {sha}"
        f"{' (uncommitted changes)' if commit.get('dirty') else ''}, "
        f"{str(result.get('created_at', ''))[:10]}, {result.get('duration_s')} s "
        f"(`results/{suite}.json`; generated by `python -m benchmarks table --write`).\n",
        "<!-- /figures -->\n",
    ]
    return "".join(lines)


_SUITE_BLOCK: Final = re.compile(r"<!-- figures: (\w+) -->\n.*?<!-- /figures -->\n", re.S)


def _docs_with_fresh_blocks(text: str, results: dict[str, dict[str, Any]]) -> str:
    return _SUITE_BLOCK.sub(lambda m: render_suite(m.group(1), results), text)


_BLOCK: Final = re.compile(
    re.escape(HEADER) + r"(?:\|.*\n)*(?:\n" + re.escape(COMMITS_PREFIX) + r".*\n)?"
)


def readme_block(text: str) -> str | None:
    """The generated block as it stands in ``text`` (README.md), or None."""
    found = _BLOCK.search(text)
    return None if found is None else found.group(0)


def write_documents() -> bool:
    """Put :func:`render`'s block in README.md in place of the old one, and each suite's
    block of docs/benchmarks.md in place of its old one; False if README has none."""
    text = README.read_text()
    old = readme_block(text)
    if old is None:
        return False
    README.write_text(text.replace(old, render()))
    DOCS.write_text(_docs_with_fresh_blocks(DOCS.read_text(), _results()))
    return True


def main(write: bool = False) -> int:
    """Print the block (``write``: also put it in README.md)."""
    block = render()
    print(block, end="")
    if write and not write_documents():
        print("README.md has no figures table followed by the commits line", flush=True)
        return 1
    return 0


def figure_problems() -> list[str]:
    """Where the documents' figures disagree with ``results/*.json``: README.md's block
    is not what :func:`render` prints, a suite's block in docs/benchmarks.md is not what
    :func:`render_suite` prints, or a suite of :data:`ROWS` has no block there."""
    results = _results()
    problems = []
    if readme_block(README.read_text()) != render(results):
        problems.append(
            "README.md's figures table differs from results/*.json: "
            "python -m benchmarks table --write"
        )
    docs = DOCS.read_text()
    if _docs_with_fresh_blocks(docs, results) != docs:
        problems.append(
            "docs/benchmarks.md's figures differ from results/*.json: "
            "python -m benchmarks table --write"
        )
    shown = set(_SUITE_BLOCK.findall(docs))
    problems.extend(
        f"docs/benchmarks.md has no <!-- figures: {suite} --> block"
        for suite in dict.fromkeys(row.suite for row in ROWS)
        if suite not in shown
    )
    return problems
