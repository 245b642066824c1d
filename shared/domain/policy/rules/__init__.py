"""The rule catalog: importing this package registers every rule (`registry.rule`).

| module | rule ids |
| --- | --- |
| `image` | allowed-base-images, os-type, hyper-v-generation, security-type |
| `build` | max-build-age, required-customizations, required-tattoo-fields |
| `distribution` | required-regions, min-replicas, storage-account-type, end-of-life-horizon |
| `evidence` | scan-thresholds, boot-test (evidence rules: may wait for data still to come) |
"""

from shared.domain.policy.rules import build, distribution, evidence, image

__all__ = ["build", "distribution", "evidence", "image"]
