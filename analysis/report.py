"""``harness report``: the comparison table as Markdown, CSV and LaTeX, and figures, next to the
results."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from analysis.curves import plot_gamma_sweeps, plot_training_curves
from analysis.latex import to_latex
from analysis.table import comparison_table, summarize, to_markdown
from harness.errors import HarnessInputError
from harness.results import RESULTS_DIRNAME, load_results


@dataclass
class Report:
    markdown: str
    markdown_path: Path
    csv_path: Path
    latex_path: Path
    figures: list[Path]


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
    latex_path = output / "report.tex"
    markdown_path.write_text(markdown)
    summary.to_csv(csv_path, index=False)
    latex_path.write_text(to_latex(table, caption=title))

    figures_dir = output / "figures"
    figures_dir.mkdir(exist_ok=True)
    figures = plot_training_curves(results, summary, figures_dir)
    figures += plot_gamma_sweeps(results, summary, figures_dir)
    return Report(markdown, markdown_path, csv_path, latex_path, figures)
