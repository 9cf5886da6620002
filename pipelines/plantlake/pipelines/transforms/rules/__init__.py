"""The rule kinds of the data-quality expectations, one module each (see `rules.base`)."""

from plantlake.pipelines.transforms.rules.base import RuleParams
from plantlake.pipelines.transforms.rules.event_time import EventTimeParams
from plantlake.pipelines.transforms.rules.known_asset import KnownAssetParams
from plantlake.pipelines.transforms.rules.quality import QualityParams
from plantlake.pipelines.transforms.rules.range import RangeParams
from plantlake.pipelines.transforms.rules.rate_of_change import RateOfChangeParams
from plantlake.pipelines.transforms.rules.stuck import StuckParams

# Every kind a rule file may name, in the order the docs list them.
KINDS: dict[str, type[RuleParams]] = {
    params.kind: params
    for params in (
        RangeParams,
        EventTimeParams,
        KnownAssetParams,
        QualityParams,
        RateOfChangeParams,
        StuckParams,
    )  # fmt: skip
}
