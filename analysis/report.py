"""``harness report``: the comparison table as Markdown and CSV next to the results."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from analysis.table import comparison_table, summarize, to_markdown
from harness.errors import HarnessInputError
from harness.results import RESULTS_DIRNAME, load_results


@dataclass
class Report:
    markdown: str
    markdown_path: Path
    csv_path: Path


def write_report(path: Path, metric: str | None = None) -> Report:
    path = Path(path)
    if not path.exists():
        raise HarnessInputError(f"results folder not found: {path}")
    output = path.parent if path.name == RESULTS_DIRNAME else path
    results = load_results(path)

    summary = summarize(results, metric)
    table = comparison_table(summary)
    counts = results.drop_duplicates("trial_id")
    title = (
        f"Final {'metric ' + metric if metric else 'objective'} of each method's best configuration, "
        f"mean ± std over seeds; {len(counts)} trials from {counts['sweep_id'].nunique()} sweep(s)."
    )
    markdown = f"{title}\n\n{to_markdown(table)}\n"

    markdown_path = output / "report.md"
    csv_path = output / "report.csv"
    markdown_path.write_text(markdown)
    summary.to_csv(csv_path, index=False)
    return Report(markdown, markdown_path, csv_path)
