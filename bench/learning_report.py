"""Turn learning-benchmark JSON (bench/learning.py) into a Markdown table and a bar chart.

    python bench/learning_report.py bench/results/learning_widowx_cpu.json \\
        [--chart docs/images/learning_widowx_cpu.png] [--markdown out.md]

Prints the Markdown table (per task: mean +- std over seeds, in %) and writes the chart:
one group of bars per task plus the mean, one bar per method, whiskers at +-1 std.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

LABELS = {"stable_crl": "Stable CRL", "crl_no_design": "CRL w/o design decisions", "gciql": "GC-IQL",
          "gcbc": "GCBC", "random": "random"}
COLOURS = {"stable_crl": (214, 69, 65), "crl_no_design": (244, 165, 130), "gciql": (67, 147, 195),
           "gcbc": (90, 174, 97), "random": (160, 160, 160)}
ORDER = ["stable_crl", "crl_no_design", "gciql", "gcbc", "random"]


def methods_of(report: dict) -> list[str]:
    found = list(report["results"])
    return [m for m in ORDER if m in found] + [m for m in found if m not in ORDER]


def seeds_of(entry: dict) -> int:
    return len(entry.get("runs", [])) or 1


def markdown_table(report: dict) -> str:
    tasks = report["eval"]["tasks"]
    methods = methods_of(report)
    header = "| task | " + " | ".join(f"{LABELS.get(m, m)}" for m in methods) + " |"
    lines = [header, "|" + " --- |" * (len(methods) + 1)]
    for task in tasks:
        cells = []
        for m in methods:
            cell = report["results"][m]["per_task"][task]
            cells.append(f"{100 * cell['mean']:.0f} ± {100 * cell['std']:.0f}" if m != "random"
                         else f"{100 * cell['mean']:.0f}")
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    lines.append("| **mean** | " + " | ".join(
        f"**{100 * report['results'][m]['success']:.1f} ± {100 * report['results'][m].get('success_std', 0):.1f}**"
        for m in methods) + " |")
    lines.append("| seeds | " + " | ".join(str(seeds_of(report["results"][m])) if m != "random" else "-"
                                          for m in methods) + " |")
    return "\n".join(lines)


def bar_chart(report: dict, path: Path, title: str | None = None) -> None:
    from PIL import Image, ImageDraw

    tasks = list(report["eval"]["tasks"]) + ["mean"]
    methods = methods_of(report)
    bar_w, gap, left, top, plot_h = 14, 18, 60, 50, 260
    group_w = bar_w * len(methods) + gap
    width = left + group_w * len(tasks) + 20
    height = top + plot_h + 120
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((left, 12), title or f"{report['env']} ({report.get('profile', '')} profile, "
              f"{report['steps']} steps): success on held-out goals, mean ± std over seeds", fill="black")
    for pct in range(0, 101, 20):
        y = top + plot_h - pct / 100 * plot_h
        draw.line([(left - 4, y), (width - 10, y)], fill=(225, 225, 225))
        draw.text((left - 34, y - 6), f"{pct}%", fill="black")
    draw.line([(left, top), (left, top + plot_h)], fill="black")
    for g, task in enumerate(tasks):
        x0 = left + gap // 2 + g * group_w
        for i, m in enumerate(methods):
            entry = report["results"][m]
            mean, std = ((entry["success"], entry.get("success_std", 0.0)) if task == "mean"
                         else (entry["per_task"][task]["mean"], entry["per_task"][task]["std"]))
            x = x0 + i * bar_w
            y = top + plot_h - mean * plot_h
            draw.rectangle([x, y, x + bar_w - 2, top + plot_h], fill=COLOURS.get(m, (0, 0, 0)))
            if std > 0:
                cx = x + bar_w // 2 - 1
                y_hi = top + plot_h - min(mean + std, 1.0) * plot_h
                y_lo = top + plot_h - max(mean - std, 0.0) * plot_h
                draw.line([(cx, y_hi), (cx, y_lo)], fill="black")
                draw.line([(cx - 3, y_hi), (cx + 3, y_hi)], fill="black")
        label = task.replace("_", " ")
        words, lines, line = label.split(), [], ""
        for w in words:  # wrap task names under their group
            if len(line) + len(w) + 1 > 14 and line:
                lines.append(line)
                line = w
            else:
                line = f"{line} {w}".strip()
        lines.append(line)
        for k, text in enumerate(lines):
            draw.text((x0, top + plot_h + 6 + 12 * k), text, fill="black")
    lx = left
    for m in methods:
        draw.rectangle([lx, height - 30, lx + 12, height - 18], fill=COLOURS.get(m, (0, 0, 0)))
        draw.text((lx + 16, height - 30), LABELS.get(m, m), fill="black")
        lx += 36 + int(draw.textlength(LABELS.get(m, m)))
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", help="JSON written by bench/learning.py")
    parser.add_argument("--chart", default=None, help="PNG bar chart to write")
    parser.add_argument("--markdown", default=None, help="also write the table to this file")
    args = parser.parse_args(argv)
    report = json.loads(Path(args.results).read_text())
    table = markdown_table(report)
    print(table)
    if args.markdown:
        Path(args.markdown).write_text(table + "\n")
    if args.chart:
        bar_chart(report, Path(args.chart))
        print(f"wrote {args.chart}")


if __name__ == "__main__":
    main()
