"""The labels airpods writes on what it creates, and the default scope: names every layer reads
(the config checks a user's labels against them, the plan writes them, the runtime reads them
back). Imports nothing."""

LABEL_SERVICE = "io.airpods.service"
LABEL_HASH = "io.airpods.spec-hash"
LABEL_MANAGED = "io.airpods.managed"
# The scope (compose's project label): every object a config creates carries it, and every
# command sees only its own scope's objects. Objects without it belong to DEFAULT_PROJECT.
LABEL_PROJECT = "io.airpods.project"
DEFAULT_PROJECT = "default"
# What later commands read back from Podman instead of re-deriving it from today's config.
LABEL_CONFIG_HASH = "io.airpods.config-hash"
LABEL_POD = "io.airpods.pod"
LABEL_KIND = "io.airpods.kind"
LABEL_PORTS = "io.airpods.ports"
LABEL_VOLUMES = "io.airpods.volumes"
LABEL_DEPENDS = "io.airpods.depends-on"
LABEL_STOP_TIMEOUT = "io.airpods.stop-timeout"
LABEL_MODEL = "io.airpods.model"
LABEL_SHAPE = "io.airpods.run-shape"
LABEL_MEMORY = "io.airpods.memory-estimate"
LABEL_URL = "io.airpods.url"
LABEL_HEALTH = "io.airpods.health"  # the health policy the watcher keeps: "interval/retries/max_restarts/start"
LABEL_PINS = "io.airpods.pins"  # a router's pinned model ids, which the watcher keeps loaded
HEALTH_KEY_PATH = "/run/airpods/health.key"  # where a llama.cpp container has its health probe's key
LABEL_VRAM = "io.airpods.vram"  # the GPU plan's VRAM per GPU at create: "0:bytes,1:bytes"
# Proof that this user's airpods made the object: an HMAC over its name and its io.airpods.* labels,
# keyed by a secret of the user's (runtime/owned.py). Podman copies an image's labels onto every
# container made from it, so no other label proves anything.
LABEL_SEAL = "io.airpods.seal"
AIRPODS_LABEL_PREFIX = "io.airpods."
