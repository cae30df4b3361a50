"""``harness report``: the comparison table as Markdown, CSV and LaTeX, and figures, next to the
results."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from analysis.curves import plot_gamma_sweeps, plot_training_curves
from analysis.toy import plot_toy_figures
from analysis.latex import to_latex
from analysis.table import comparison_table, final_rows, summarize, to_markdown
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
    folder = path.parent if path.is_file() else path
    output = folder.parent if folder.name == RESULTS_DIRNAME else folder
    results = load_results(path)
    for name in results["objective"].dropna().unique():
        if name not in results.columns:
            # Trials that all failed before their first evaluation leave no column for the metric.
            results[name] = float("nan")

    summary = summarize(results, metric)
    table = comparison_table(summary)
    counts = results.drop_duplicates("trial_id")
    title = (
        f"Final {'metric ' + metric if metric else 'objective'} of each method's best configuration, "
        f"mean ± std over seeds; {len(counts)} trials from {counts['sweep_id'].nunique()} sweep(s)."
    )
    markdown = f"{title}\n\n{to_markdown(table)}\n"
    unfinished = int((final_rows(results)["status"] == "running").sum())
    if unfinished:
        markdown += (
            f"\n{unfinished} of {len(counts)} trials have not ended (still running, or stopped by a crash), "
            "so their configurations are not in the table yet.\n"
        )

    try:
        return _write_files(output, results, summary, table, title, markdown)
    except OSError as error:
        raise HarnessInputError(
            f"cannot write the report into {output}: {error.strerror} ({error.filename}); "
            "make the folder writable or copy the results elsewhere"
        ) from None


def _write_files(output: Path, results, summary, table, title: str, markdown: str) -> Report:
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
    figures += plot_toy_figures(results, figures_dir)
    return Report(markdown, markdown_path, csv_path, latex_path, figures)
