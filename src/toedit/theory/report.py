"""`run_theory`: Monte Carlo of every chain against its closed form / exact oracle, as table, plot and statement."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..optional import optional_import
from ..verdicts import Verdict, interval, paired_delta
from .claims import edit_history, theory_family, theory_verdicts
from .linreg import SETTINGS, ChainResult, Design, edit_counts, run_chain, schedule_shortfall
from .oracle import (
    ACCUMULATE_LIMIT,
    PAPER_BOUND,
    accumulate_closed_form,
    conditional_u,
    edit_oracle,
    replace_closed_form,
    u_value,
)
from .scope import scope_markdown, scope_table

Z_VERDICT = 3.0  # standard errors a Monte Carlo mean must clear to count as above/below the bound


def _floats(a: np.ndarray | None, nd: int = 6) -> list[float] | None:
    return None if a is None else [round(float(x), nd) for x in np.asarray(a, dtype=float)]


def _plateau_from(errors: np.ndarray) -> int | None:
    """First generation from which every trial's error stays exactly constant (None if still moving)."""
    moving = np.any(np.diff(errors, axis=1) != 0.0, axis=0)  # (generations - 1,): round n changes something
    if moving.size and moving[-1]:
        return None
    idx = np.flatnonzero(moving)
    return int(idx[-1] + 2) if idx.size else 1


def _setting_summary(
    res: ChainResult, unit: float, *, sigma: float, fraction: float, eta: float, last: int = 3
) -> dict[str, Any]:
    """Per-generation numbers of one chain in units of `unit`, with its reference curve where one exists."""
    N = res.generations
    err = res.errors / unit
    mean = err.mean(axis=0)
    se = err.std(axis=0, ddof=1) / math.sqrt(res.trials)
    out: dict[str, Any] = {"mc_mean": mean, "mc_stderr": se}
    ref = ref_se = approx = per_trial_oracle = None
    kind = None
    if res.setting == "replace":
        ref, kind = replace_closed_form(N), "closed form n"
    elif res.setting == "accumulate":
        ref, kind = accumulate_closed_form(N), "closed form sum 1/i^2"
    elif res.masks is not None:
        exact = edit_oracle(res.X, res.masks, sigma)
        paper = edit_oracle(res.X, res.masks, sigma, paper_approximation=True)
        if exact.ndim == 1:  # fixed design, masks shared by every trial: exact conditional expectation
            ref, approx, kind = exact / unit, paper / unit, "exact oracle"
        else:  # one (X, masks) per trial: exact conditional expectations, averaged over the trials
            ex, pa = exact / unit, paper / unit
            per_trial_oracle = ex
            ref, approx = ex.mean(axis=0), pa.mean(axis=0)
            ref_se = ex.std(axis=0, ddof=1) / math.sqrt(ex.shape[0])
            kind = "exact oracle averaged over the trials' designs and masks"
    out.update(reference=ref, reference_stderr=ref_se, reference_kind=kind, paper_recursion=approx)

    # Growth over the last round, per trial (paired), and whether the chain has stopped moving.
    if N >= 2:
        inc = err[:, -1] - err[:, -2]
        out["last_increment"] = float(inc.mean())
        out["last_increment_stderr"] = float(inc.std(ddof=1) / math.sqrt(res.trials))
    else:
        out["last_increment"] = out["last_increment_stderr"] = float("nan")
    out["plateau_from"] = _plateau_from(res.errors)
    # the verdicts' inputs: the mean increment per generation over the last `last` generations, per trial
    # (Monte Carlo, and the exact oracle's where it exists), and the last generation minus the bound
    if last < N:
        out["tail_increment"] = interval((err[:, -1] - err[:, -1 - last]) / last)
        if per_trial_oracle is not None:
            ex = per_trial_oracle
            out["oracle_tail_increment"] = interval((ex[:, -1] - ex[:, -1 - last]) / last)
    out["tail_generations"] = last
    out["final_minus_bound"] = interval(err[:, -1] - PAPER_BOUND)
    above = mean - Z_VERDICT * se > PAPER_BOUND
    below = mean + Z_VERDICT * se < PAPER_BOUND
    out["first_above_bound"] = int(np.argmax(above) + 1) if above.any() else None
    out["verdict"] = "above" if above.any() else ("below" if below.all() else "within noise")
    if res.edited is not None:
        out["rows_ever_edited"] = float((res.edited > 0).mean())
        out["max_edits_per_row"] = int(res.edited.max())
        out["mean_edits_per_row"] = float(res.edited.mean())
        T = res.X.shape[-2]
        if res.setting != "edit/bernoulli":
            counts = edit_counts(T, fraction, eta, N - 1)
            out["rows_per_round"] = [int(k) for k in counts]
            if res.setting == "edit/disjoint":
                out["schedule_shortfall"] = schedule_shortfall(T, counts)
        if res.rows_per_round is not None:
            out["rows_edited_per_round"] = res.rows_per_round
            out["edited_share"] = res.edited_share
    return out


def _cell(mean: float, se: float, ref: float | None) -> str:
    s = f"{mean:.3f} ± {se:.3f}"
    return s if ref is None else f"{s} ({ref:.3f})"


def theory_table(results: dict[str, Any]) -> str:
    """Markdown table: Monte Carlo mean ± s.e. (reference) in units of u, per generation and setting."""
    names = list(results["settings"])
    head = "| n | " + " | ".join(names) + " | bound |"
    lines = [head, "|" + "---|" * (len(names) + 2)]
    for i, n in enumerate(results["generations"]):
        cells = []
        for name in names:
            s = results["settings"][name]
            ref = None if s["reference"] is None else s["reference"][i]
            cells.append(_cell(s["mc_mean"][i], s["mc_stderr"][i], ref))
        lines.append(f"| {n} | " + " | ".join(cells) + f" | {PAPER_BOUND:g} |")
    return "\n".join(lines)


def _describe(
    name: str,
    s: dict[str, Any],
    N: int,
    params: dict[str, Any],
    replace_final: float | None,
    growth: Verdict | None = None,
) -> str:
    mean, se = s["mc_mean"], s["mc_stderr"]
    final = f"{mean[-1]:.2f}u ± {se[-1]:.2f}"
    ref = s["reference"]
    if name == "replace":
        return f"replace grows linearly: {final} at generation {N} (closed form {ref[-1]:.0f}u)."
    if name == "accumulate":
        return (
            f"accumulate stays bounded: {final} at generation {N} (closed form {ref[-1]:.3f}u, "
            f"limit pi^2/6 = {ACCUMULATE_LIMIT:.3f}u)."
        )
    sched = f"{100 * params['fraction']:g}% of rows, x{params['eta']:g} per round"
    who = f"{name} ({sched})"
    if s["plateau_from"] is not None:
        shape = f"plateaus at {final} from generation {s['plateau_from']}"
    else:
        shape = f"reaches {final} at generation {N} (+{s['last_increment']:.3f}u in the last round)"
    hypothesis = s.get("max_edits_per_row", 0) <= 1  # M_i M_j = 0: no row edited twice in any trial
    if s["verdict"] == "above":
        verdict = f"its Monte Carlo mean first lies 3 s.e. above 2u at generation {s['first_above_bound']}"
    elif s["verdict"] == "below":
        verdict = f"it stays 3 s.e. below 2u for all {N} generations"
    else:
        verdict = "it is within noise of 2u"
    parts = [f"{who} {shape}; {verdict}."]
    if growth is not None:
        parts.append(f"Bounded? {growth.bold}.")
    if s["reference"] is not None:
        kind = s["reference_kind"].replace("exact oracle", "exact covariance oracle")
        parts.append(f"The {kind} gives {ref[-1]:.3f}u at generation {N}")
        if s["paper_recursion"] is not None:
            parts[-1] += f", the paper's recursion (M P replaced by M) {s['paper_recursion'][-1]:.3f}u"
        parts[-1] += "."
    if "max_edits_per_row" not in s:
        pass
    elif hypothesis:
        parts.append(
            f"Its masks satisfy the theorem's hypothesis M_i M_j = 0 (no row edited twice; "
            f"{100 * s['rows_ever_edited']:.0f}% of rows edited in all)."
        )
    else:
        parts.append(
            f"Its masks overlap (rows edited up to {s['max_edits_per_row']} times, "
            f"{s['mean_edits_per_row']:.2f} times on average), so the theorem's hypothesis does not hold"
        )
        if replace_final is not None and mean[-1] < 0.5 * replace_final:
            parts[-1] += f"; still far below replace ({replace_final:.2f}u)"
        parts[-1] += "."
    history = edit_history(s)
    if history:
        parts.append(history)
    return " ".join(parts)


def theory_statement(results: dict[str, Any]) -> str:
    """Plain-language summary computed from the numbers in `results`."""
    p = results["params"]
    N = p["generations"]
    if p["design"] == "random":
        unit = (
            f"Errors are E||w_hat_n - w*||^2 in units of u = sigma^2 d/(T-d-1) = {results['u']:.4g} "
            f"(d={p['d']}, T={p['T']}, sigma={p['sigma']:g}), Monte Carlo over {p['trials']} trials, "
            "a fresh Gaussian design per trial."
        )
    else:
        unit = (
            f"Errors are E||w_hat_n - w*||^2 given one fixed design, in units of the conditional "
            f"u_X = sigma^2 tr((X^T X)^-1) = {results['u_design']:.4g} (u = {results['u']:.4g}; d={p['d']}, "
            f"T={p['T']}, sigma={p['sigma']:g}), Monte Carlo over {p['trials']} trials."
        )
    lines = [unit]
    settings = results["settings"]
    rep = settings["replace"]["mc_mean"][-1] if "replace" in settings else None
    v = theory_verdicts(results) if "margins" in results else {}
    lines += [_describe(name, s, N, p, rep, v.get(name)) for name, s in settings.items()]
    if "bound_2u" in v:
        lines.append(
            f"Paper's bound E_test <= 2u (Theorem 2, disjoint masks, at generation {N}): {v['bound_2u'].bold}."
        )
    if results.get("scope"):
        where = "; ".join(_where(sweep, w) for sweep, w in results["scope"]["where"].items())
        lines.append(
            f"Where the 2u bound starts to fail (disjoint masks, exact oracle, see the scope table): {where}."
        )
    family = theory_family(results) if "margins" in results else ""
    if family:
        lines.append(family)
    return "\n".join(lines)


def _where(sweep: str, w: dict[str, Any]) -> str:
    held = f"holds up to {w['last_holds']}" if w["last_holds"] else "does not hold at the first step"
    if w["first_fails"] is None:
        return f"{sweep}: {held}, never fails in the sweep"
    return f"{sweep}: {held}, fails from {w['first_fails']}"


def _plot(results: dict[str, Any]) -> bytes:
    """PNG of error/u against generation: all settings, and a zoom without replace."""
    import io

    Figure = optional_import("matplotlib.figure", purpose="the theory plot").Figure

    gens = np.asarray(results["generations"])
    fig = Figure(figsize=(11, 4.4), dpi=120)
    axes = fig.subplots(1, 2)
    colors = {name: f"C{i}" for i, name in enumerate(results["settings"])}
    for ax, skip in zip(axes, ((), ("replace",)), strict=True):
        for name, s in results["settings"].items():
            if name in skip:
                continue
            m, se = np.asarray(s["mc_mean"]), np.asarray(s["mc_stderr"])
            c = colors[name]
            ax.plot(gens, m, marker="o", ms=3, color=c, label=f"{name} (MC)")
            ax.fill_between(gens, m - 2 * se, m + 2 * se, color=c, alpha=0.25, lw=0)
            if s["reference"] is not None:
                ax.plot(
                    gens,
                    s["reference"],
                    ls="--",
                    color=c,
                    lw=1,
                    label=f"{name}: {s['reference_kind'].split(' averaged')[0]}",
                )
            if s.get("paper_recursion") is not None:
                ax.plot(gens, s["paper_recursion"], ls=":", color=c, lw=1, label=f"{name}: paper recursion")
        ax.axhline(PAPER_BOUND, color="k", lw=1.2, label="paper bound 2u")
        ax.axhline(ACCUMULATE_LIMIT, color="grey", lw=0.8, ls="-.", label="pi^2/6 u")
        ax.set_xlabel("generation n")
        ax.set_ylabel("E_test / u")
        ax.grid(alpha=0.3)
    axes[0].set_title("all settings (bands: ±2 s.e.)")
    axes[1].set_title("without replace")
    axes[0].legend(fontsize=6.5, loc="upper left")
    p = results["params"]
    fig.suptitle(
        f"Linear-regression collapse: d={p['d']}, T={p['T']}, sigma={p['sigma']:g}, {p['trials']} trials, "
        f"edit {100 * p['fraction']:g}% x{p['eta']:g}/round, {p['design']} design",
        fontsize=9,
    )
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _write_atomic(path: Path, data: bytes | str) -> None:
    """Write via a sibling temp file and os.replace (file mode follows the umask)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _jsonable(results: dict[str, Any]) -> dict[str, Any]:
    def conv(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: conv(v) for k, v in x.items()}
        if isinstance(x, np.ndarray):
            return _floats(x)
        if isinstance(x, list | tuple):
            return [conv(v) for v in x]
        if isinstance(x, np.integer):
            return int(x)
        if isinstance(x, float | np.floating):
            x = float(x)
            return None if math.isnan(x) else round(x, 6)
        return x

    return conv(results)


def run_theory(
    d: int = 10,
    T: int = 50,
    sigma: float = 1.0,
    generations: int = 12,
    trials: int = 2000,
    fraction: float = 0.3,
    eta: float = 0.8,
    seed: int = 0,
    out_dir: str | Path | None = None,
    design: Design = "random",
    last: int = 3,
    increment_margin: float = 0.01,
    bound_margin: float = 0.05,
    scope: bool = True,
) -> dict[str, Any]:
    """Simulate replace, accumulate and the three edit policies; compare with closed forms and the oracle.

    ``design="random"`` (default) draws a fresh design per trial and reports errors in units of
    u = sigma^2 d/(T-d-1), the oracle column being the exact conditional expectation averaged over the
    trials' designs and masks. ``design="fixed"`` uses one seeded design (masks shared by all trials), units of
    u_X = sigma^2 tr((X^T X)^-1), and the oracle column is exact.
    Returns a JSON-ready dict with ``settings`` (per setting: ``mc_mean``, ``mc_stderr``, ``reference``, ...
    per generation, in units of u), ``bound`` (2u per generation), ``table`` (markdown), ``statement`` and
    ``seconds``; with ``out_dir``, also writes theory.json, theory.md and theory.png there.
    """
    if last < 1 or increment_margin <= 0 or bound_margin <= 0:
        raise ValueError("last must be >= 1 and the margins > 0")
    t0 = time.perf_counter()
    u = u_value(d, T, sigma)
    common = dict(
        d=d,
        T=T,
        sigma=sigma,
        generations=generations,
        trials=trials,
        fraction=fraction,
        eta=eta,
        design=design,
    )
    settings: dict[str, Any] = {}
    finals: dict[str, np.ndarray] = {}
    u_design = None
    for name in SETTINGS:
        res = run_chain(name, seed=seed, **common)  # same seed: shared designs and noise across settings
        unit = u
        if design == "fixed":
            unit = u_design = float(conditional_u(res.X, sigma))
        settings[name] = _setting_summary(res, unit, sigma=sigma, fraction=fraction, eta=eta, last=last)
        finals[name] = res.errors[:, -1] / unit
    for name, s in settings.items():  # common random numbers: replace and each chain share designs and noise
        if name != "replace":
            s["gap_to_replace"] = paired_delta(finals["replace"].tolist(), finals[name].tolist())
    margins = {"increment_margin": increment_margin, "bound_margin": bound_margin, "last": last}
    results: dict[str, Any] = {
        "params": dict(common, seed=seed),
        "margins": margins,
        "u": u,
        "u_design": u_design,
        "unit": "u = sigma^2 d/(T-d-1)" if design == "random" else "u_X = sigma^2 tr((X^T X)^-1)",
        "generations": list(range(1, generations + 1)),
        "bound": [PAPER_BOUND] * generations,
        "settings": settings,
    }
    if scope:
        results["scope"] = scope_table(d=d, T=T, sigma=sigma, generations=generations, seed=seed)
    results = _jsonable(results)
    results["table"] = theory_table(results)
    results["statement"] = theory_statement(results)
    results["seconds"] = round(time.perf_counter() - t0, 3)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        _write_atomic(out / "theory.png", _plot(results))
        md = (
            "# Linear-regression collapse: replace vs accumulate vs ToEdit\n\n"
            + "\n".join(f"- {line}" for line in results["statement"].splitlines())
            + "\n\nCells: Monte Carlo mean ± standard error (reference: closed form or exact oracle), "
            f"in units of {results['unit']}.\n\n{results['table']}\n\n"
            + (
                f"Theorem 2's scope:\n\n{scope_markdown(results['scope'])}\n\n"
                if results.get("scope")
                else ""
            )
            + f"Parameters: {json.dumps(results['params'])}; wall time {results['seconds']:.2f} s.\n"
        )
        _write_atomic(out / "theory.md", md)
        _write_atomic(out / "theory.json", json.dumps(results, indent=2) + "\n")
    return results
