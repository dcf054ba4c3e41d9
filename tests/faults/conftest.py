from tests.integration.conftest import busybox_image, prun  # noqa: F401  (the same fixtures)
