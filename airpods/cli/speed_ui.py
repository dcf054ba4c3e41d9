"""The speed prediction as `models fit` (and `models search`) show it, next to what this
machine's benches measured for the same model."""

from __future__ import annotations

from typing import Any

from airpods.cli.application import Application


def device_of(app: Application, spec: Any) -> str:
    """"cpu", or "gpu:NAME[,NAME]" for a spec the GPU plan puts on GPUs (the benches' device key)."""
    if not spec.gpus:
        return "cpu"
    return "gpu:" + ",".join(g.name for g in app.stack.gpu_inventory if g.index in spec.gpus)


def predicted(app: Application, spec: Any, facts: Any, *, exclude: str | None = None):
    """The Prediction for `facts` at `spec`'s settings on this machine (plan/speed.py)."""
    from airpods.bench.machine import figures
    from airpods.plan.speed import predict

    machine = figures(app.environ, device=device_of(app, spec), exclude=exclude, threads=spec.threads)
    return predict(facts, spec.llama.shape, machine) if spec.llama is not None else None


def fit_speed(app: Application, spec: Any, probe: Any, model: str) -> dict[str, Any]:
    """{"speed": the prediction, "measured": the last bench of this model here and how far its
    prediction and its memory estimate were off}; empty where the model cannot be read."""
    from airpods.bench.history import load
    from airpods.cli.bench_ui import facts_of

    facts = facts_of(app, spec, model)
    if facts is None:
        return {}
    guess = predicted(app, probe, facts)
    out: dict[str, Any] = {"speed": guess.to_json() if guess else None}
    runs = [r for r in load(app.environ, model) if r.get("generation_tokens_per_s")]
    if runs:
        r = runs[-1]
        out["measured"] = {"at": r["at"], "generation_tokens_per_s": r["generation_tokens_per_s"],
                           "prompt_tokens_per_s": r.get("prompt_tokens_per_s"),
                           "predicted_generation_tokens_per_s": r.get("predicted_generation_tokens_per_s"),
                           "memory_bytes": r.get("memory_bytes"), "estimate_bytes": r.get("estimate_bytes"),
                           "runs": len(runs)}
    from airpods.bench.loads import load as loads

    held = loads(app.environ, model)
    if held:
        out["loaded"] = {**{k: held[-1][k] for k in ("at", "service", "memory_bytes", "estimate_bytes")},
                         "starts": len(held)}
    return out


def estimates_here(environ: Any) -> str | None:
    """How far the memory estimates were off on this machine, in words, from the benches' peaks."""
    from airpods.bench.history import load

    ratios = sorted(r["estimate_bytes"] / r["memory_bytes"] for r in load(environ)
                    if r.get("estimate_bytes") and r.get("memory_bytes"))
    if not ratios:
        return None
    span = f"{ratios[0]:.2f}" + (f"–{ratios[-1]:.2f}" if len(ratios) > 1 else "")
    return f"memory estimates here were {span}× the peaks {len(ratios)} bench{'es' if len(ratios) > 1 else ''} measured"


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}×" if a and b else "?"


def say_speed(t: Any, speed: dict[str, Any]) -> None:
    from datetime import datetime

    from airpods.plan.memory import human

    guess = speed.get("speed")
    if guess:
        gen, prompt = guess["generation_tokens_per_s"], guess["prompt_tokens_per_s"]
        t.info("predicted here: " + (f"{gen:.1f} generation tokens/s" if gen else "generation speed unknown")
               + (f", {prompt:.0f} prompt tokens/s" if prompt else "") + f" ({guess['basis']})")
    m = speed.get("measured")
    if m:
        when = datetime.fromtimestamp(m["at"]).strftime("%Y-%m-%d")
        memory = (f"; memory {human(m['memory_bytes'])} measured, {human(m['estimate_bytes'])} estimated "
                  f"({_ratio(m['memory_bytes'], m['estimate_bytes'])})" if m.get("memory_bytes") and
                  m.get("estimate_bytes") else "")
        t.info(f"measured here ({m['runs']} bench{'es' if m['runs'] > 1 else ''}, last {when}): "
               f"{m['generation_tokens_per_s']:.1f} generation tokens/s, predicted then "
               f"{m['predicted_generation_tokens_per_s'] or '?'}{memory}")
    held = speed.get("loaded")
    if held:
        t.info(f"after its last healthy start in {held['service']} it held {human(held['memory_bytes'])}, against "
               f"an estimate of {human(held['estimate_bytes'])} (the KV cache's pages count once a context fills them)")
