"""Pull images concurrently, reporting progress; failures are collected, not raised one by one."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from airpods.errors import AirpodsError
from airpods.orchestrate.events import Reporter
from airpods.plan.spec import ServiceSpec
from airpods.runtime.port import ContainerRuntime, PullProgress


def pull_all(runtime: ContainerRuntime, specs: list[ServiceSpec], reporter: Reporter) -> list[str]:
    """Pull each distinct image once; return one line per failed image."""
    images = list(dict.fromkeys(s.image for s in specs))

    def pull(image: str) -> str | None:
        try:
            reporter.pull(PullProgress(image, "Pulling"))
            for progress in runtime.pull(image):
                reporter.pull(progress)
            reporter.pull(PullProgress(image, "Pulled"))
            return None
        except AirpodsError as exc:
            reporter.pull(PullProgress(image, "Failed", error=exc.message))
            return exc.message

    with ThreadPoolExecutor(max_workers=max(1, min(4, len(images)))) as pool:
        results = list(pool.map(pull, images))
    return [r for r in results if r]
