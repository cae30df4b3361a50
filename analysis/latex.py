"""The comparison table as a LaTeX ``tabular`` with booktabs rules, ready for a paper."""

from __future__ import annotations

import pandas as pd

_REPLACEMENTS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}
_SYMBOLS = {"±": r"$\pm$", "↓": r"$\downarrow$", "↑": r"$\uparrow$", "—": "---", "γ": r"$\gamma$"}


def escape(text: str) -> str:
    """Escape LaTeX's special characters and spell the table's Unicode symbols as math."""
    escaped = "".join(_REPLACEMENTS.get(char, char) for char in str(text))
    for symbol, replacement in _SYMBOLS.items():
        escaped = escaped.replace(symbol, replacement)
    return escaped


def to_latex(table: pd.DataFrame, caption: str | None = None) -> str:
    """Return ``table`` (methods × columns of formatted cells) as a booktabs ``tabular``."""
    header = " & ".join(["Method", *[escape(c) for c in table.columns]])
    lines = [
        "% Requires \\usepackage{booktabs}.",
        "\\begin{tabular}{l" + "c" * len(table.columns) + "}",
        "\\toprule",
        header + " \\\\",
        "\\midrule",
    ]
    for method, row in table.iterrows():
        lines.append(" & ".join([escape(method), *[escape(cell) for cell in row]]) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    if caption:
        lines.insert(0, f"% {caption}")
    return "\n".join(lines) + "\n"
