"""Files airpods writes into its own folder for a container to read through a bind mount: a
router's preset, Prometheus' scrape configuration. From the spec alone; no secrets in them."""

from __future__ import annotations

from airpods.plan.spec import ServiceSpec


def write_config_files(spec: ServiceSpec) -> None:
    """The files a spec's container reads from airpods' folder (no secrets in them): world-readable,
    as the container's own user (Prometheus runs as nobody) reads them through a read-only mount."""
    from pathlib import Path

    from airpods.secrets import write_atomic

    for host_path, text in spec.config_files:
        path = Path(host_path)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        write_atomic(path, text, 0o644)


def write_preset(spec: ServiceSpec, *, in_place: bool = False) -> None:
    """The router's preset, from the spec, where its read-only bind mount expects it. `in_place`
    for a running router: a file bind mount keeps the inode it was made with, so the new text must
    go into that same file (then the router is asked to read it again), not replace it."""
    from pathlib import Path

    from airpods.secrets import write_atomic

    assert spec.router is not None
    path = Path(spec.router.preset_host_path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    if in_place and path.is_file():
        with open(path, "r+", encoding="utf-8") as fh:
            fh.write(spec.router_preset)
            fh.truncate()
        return
    write_atomic(path, spec.router_preset, 0o644)  # read by the container's user; it holds no secrets
