"""Output folder of `simulate calibrate`: fitted.json, calibrated.yaml (the parameter
overlay that `simulate`, `compare`, `sweep` and `validate` take with --params),
posterior.csv (draws usable as a PSA's parameter distribution), targets.png (every target
against its simulated value, both intervals), convergence.png and report.html."""

from __future__ import annotations

import csv
import html
import os
from pathlib import Path
from typing import Any

from ..calibrate import CalibrationResult
from .atomic import json_roundtrip, png_figure, write_json
from .figures import COLORS, _quiet, _save, subplots
from .validation import forest

__all__ = ["CALIBRATION_FILES", "write_calibration"]

CALIBRATION_FILES = (
    "fitted.json",
    "calibrated.yaml",
    "posterior.csv",
    "targets.png",
    "convergence.png",
    "pairs.png",
    "report.html",
)


def _overlay(result: CalibrationResult) -> str:
    """calibrated.yaml: one `dotted.path: value` per fitted parameter (exact floats)."""
    p = result.plan
    lines = [
        f"# Parameters fitted by `simulate calibrate {p.path.name}` (simulator",
        "# version in fitted.json). Use with: simulate SCENARIO.yaml --params this file",
    ]
    lines += [f"{n}: {float(v)!r}" for n, v in zip(p.names, result.estimate, strict=True)]
    return "\n".join(lines) + "\n"


def _posterior_csv(result: CalibrationResult, path: Path) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow([*result.plan.names, "weight"])
        weights = result.weights
        for i, row in enumerate(result.posterior):
            w.writerow(
                [repr(float(v)) for v in row]
                + ["1" if weights is None else repr(float(weights[i]))]
            )


@_quiet
def _convergence(result: CalibrationResult, path: Path) -> None:
    fig, ax = subplots(figsize=(8, 3.8))
    losses = [e["loss"] for e in result.evaluations]
    # every curvature evaluation is one series ("curvature"), each start (or ABC
    # generation) its own
    starts = [
        "curvature (intervals)" if e["purpose"].startswith("curvature") else e["purpose"]
        for e in result.evaluations
    ]
    complete = [e.get("complete", True) for e in result.evaluations]
    names = list(dict.fromkeys(s for s, c in zip(starts, complete, strict=True) if c))
    for k, name in enumerate(names):
        xs = [i for i, s in enumerate(starts) if s == name and complete[i]]
        ax.plot(
            xs,
            [losses[i] for i in xs],
            ".",
            markersize=4,
            color=COLORS[k % len(COLORS)],
            label=name if k < 6 else None,
        )
    # ABC moves rejected early: their loss is only a lower bound (hollow, grey)
    cut = [i for i, c in enumerate(complete) if not c]
    if cut:
        ax.plot(
            cut,
            [losses[i] for i in cut],
            "o",
            markersize=3,
            markerfacecolor="none",
            markeredgewidth=0.6,
            color="0.6",
            label="rejected early (loss at least this)",
            zorder=0,
        )
        full = [x for x, c in zip(losses, complete, strict=True) if c and x > 0]
        if full:  # a lower bound far below every full loss says nothing: off the axis
            ax.set_ylim(bottom=min(full) / 3)
    ax.set_yscale("log")
    ax.set_xlabel("evaluation")
    ax.set_ylabel("loss (sum of squared standardised misses)")
    ax.set_title(f"Convergence: lowest loss {result.lowest_loss():.3g}")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    _save(fig, path)


@_quiet
def _pairs(result: CalibrationResult, path: Path) -> None:
    """Pairwise plots of the posterior draws (weighted particles for ABC; alpha by
    weight), histograms on the diagonal."""
    import numpy as np

    x = result.posterior
    k = x.shape[1]
    w = result.weights if result.weights is not None else np.full(len(x), 1 / len(x))
    alpha = np.clip(w / w.max(), 0.05, 1.0)
    size = min(2.2, 12 / k)
    fig, axes = subplots(k, k, figsize=(size * k + 1, size * k + 1), squeeze=False)
    names = [
        n.split(".")[-2] + "." + n.split(".")[-1] if n.count(".") else n for n in result.plan.names
    ]
    for i in range(k):
        for j in range(k):
            ax = axes[i, j]
            if i == j:
                ax.hist(x[:, i], bins=20, weights=w, color=COLORS[0])
            elif i > j:
                colors = np.zeros((len(x), 4))
                colors[:, :3] = (0.0, 0.447, 0.698)
                colors[:, 3] = alpha
                ax.scatter(x[:, j], x[:, i], s=4, c=colors)
            else:
                ax.set_axis_off()
                continue
            ax.tick_params(labelsize=5)
            if i == k - 1:
                ax.set_xlabel(names[j], fontsize=6)
            if j == 0:
                ax.set_ylabel(names[i], fontsize=6)
    fig.suptitle("Posterior draws, pairwise (posterior.csv)", fontsize=9)
    _save(fig, path)


def _losses(data: dict[str, Any]) -> str:
    """The loss at the estimate, named for what it is, and the least loss of the run."""
    if data["method"] == "optimize":
        text = f"Best loss <b>{data['loss']:.4g}</b> (at the estimate, the best end point)"
        if data["lowest_loss"] < data["loss"]:
            text += f"; lowest loss of any evaluation {data['lowest_loss']:.4g}"
        return text
    text = (
        f"Loss at the componentwise posterior median <b>{data['loss']:.4g}</b> (the"
        " estimate; not the least loss of the run)"
    )
    if "lowest_particle_loss" in data:
        text += f"; lowest loss of the final particles {data['lowest_particle_loss']:.4g}"
    return text + f"; lowest loss of any evaluation {data['lowest_loss']:.4g}"


def _tolerance(data: dict[str, Any]) -> str:
    """ABC: the tolerance the run reached and what the particles sample there."""
    tol = data.get("abc_tolerance")
    if not tol:
        return ""
    asked = f"{tol['final_tolerance_value']:.4g}"
    if tol["final_tolerance"] == "se":
        asked = f"se ({asked})"
    text = (
        f"<p>Final tolerance asked for: <b>{asked}</b>; reached: "
        f"<b>{tol['tolerance_reached']:.4g}</b>, {html.escape(tol['targets'])}.</p>"
    )
    if not tol["reached"]:
        text += (
            f"<p class='no'>Warning: the run stopped at max_generations "
            f"({tol['max_generations']}) before reaching the final tolerance: the particles"
            " sample a wider posterior than the one asked for. Raise abc.max_generations."
            "</p>"
        )
    return text


def _html(data: dict[str, Any], folder: Path) -> str:
    out = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Calibration: {html.escape(data['name'])}</title><style>body{{font-family:"
        "system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}table{border-"
        "collapse:collapse;font-size:13px;margin:1em 0}th,td{border:1px solid #ccc;"
        "padding:3px 6px;text-align:right}th{background:#f3f3f3}td.l{text-align:left}"
        "img{max-width:100%}.no{color:#D55E00;font-weight:bold}small{color:#555}"
        "</style></head><body>",
        f"<h1>Calibration: {html.escape(data['name'])}</h1>",
        f"<p>Method <b>{data['method']}</b> ("
        + (
            "Nelder-Mead on the logit scale of each parameter's bounds"
            if data["method"] == "optimize"
            else "ABC-SMC with adaptive tolerances and a Gaussian kernel, uniform priors"
            " between the bounds"
        )
        + f"), {data['evaluations']} evaluations of {data['patients']:,} "
        f"virtual patients per arm, the same patients at every evaluation (seed "
        f"{data['seed']}). {_losses(data)} (the loss: sum over targets of the squared miss "
        "in half-widths of the published 95% interval).</p>",
        _tolerance(data),
        "<h2>Fitted parameters</h2><table><tr><th>parameter</th><th>estimate</th>"
        "<th>95% interval</th><th>start</th><th>bounds</th></tr>",
    ]
    for p in data["parameters"]:
        why = p.get("not_identified_because")
        ci = (
            "<span class='no'>not identified</span>"
            + ("" if not why else f"<br><small>{html.escape(why)}</small>")
            if p["ci95"] is None
            else f"{p['ci95'][0]:.4g} to {p['ci95'][1]:.4g}"
        )
        out.append(
            f"<tr><td class='l'>{html.escape(p['parameter'])}</td><td>"
            f"{p['estimate']:.4g}</td><td>{ci}</td><td>{p['start']:.4g}</td>"
            f"<td>{p['low']:.4g} to {p['high']:.4g}</td></tr>"
        )
    out.append(f"</table><p><small>{html.escape(data['interval_note'])}.</small></p>")
    n_in = sum(t["overlaps"] for t in data["targets"])
    out.append(f"<h2>Targets at the estimate: {n_in} of {len(data['targets'])} met</h2>")
    out.append(png_figure(folder / "targets.png", "targets"))
    out.append(png_figure(folder / "pairs.png", "posterior pairs"))
    out.append(png_figure(folder / "convergence.png", "convergence"))
    if data["starts"]:
        out.append(
            "<h2>Starts</h2><table><tr><th>start</th><th>loss</th><th>evaluations</th>"
            "<th>converged</th></tr>"
        )
        for i, s in enumerate(data["starts"], start=1):
            out.append(
                f"<tr><td>{i}</td><td>{s['loss']:.4g}</td><td>{s['evaluations']}</td>"
                f"<td class='l'>{'yes' if s['converged'] else 'no'}: "
                f"{html.escape(s['message'])}</td></tr>"
            )
        out.append("</table>")
    if data.get("generations"):
        out.append(
            "<h2>Generations</h2><table><tr><th>generation</th><th>tolerance</th>"
            "<th>ESS</th><th>resampled</th><th>move acceptance</th>"
            "<th>moves rejected early</th></tr>"
        )
        for g in data["generations"]:
            early = g.get("stopped_early")
            out.append(
                f"<tr><td>{g['generation']}</td><td>{g['tolerance']:.3g}</td>"
                f"<td>{g['ess']:.1f}</td><td>{'yes' if g['resampled'] else 'no'}</td>"
                f"<td>{g['acceptance']:.2f}</td>"
                f"<td>{'' if early is None else f'{early:.2f}'}</td></tr>"
            )
        out.append("</table>")
    out.append(
        "<p><small>calibrated.yaml holds the estimates as a parameter "
        "overlay (<code>simulate SCENARIO.yaml --params calibrated.yaml</code>); "
        "posterior.csv the posterior draws with their weights (a PSA sweep takes "
        "it as <code>from_posterior</code>). What the fit predicts that it was not "
        "fitted to: <code>simulate validate studies/*.yaml --params calibrated.yaml"
        "</code> (the targets tagged <code>validation</code>; docs/model.md section 6)."
        "</small></p></body></html>\n"
    )
    return "".join(out)


def write_calibration(result: CalibrationResult, folder: str | os.PathLike[str]) -> dict[str, Any]:
    folder = Path(folder)
    data = result.to_json()
    write_json(folder / "fitted.json", data)
    (folder / "calibrated.yaml").write_text(_overlay(result), encoding="utf-8")
    _posterior_csv(result, folder / "posterior.csv")
    forest(result.targets, folder / "targets.png")
    _convergence(result, folder / "convergence.png")
    _pairs(result, folder / "pairs.png")
    (folder / "report.html").write_text(_html(json_roundtrip(data), folder), encoding="utf-8")
    return data
