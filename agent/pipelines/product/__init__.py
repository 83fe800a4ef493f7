"""Product recognition against the store catalogue: ``product.recognized``, ``product.interest``, mismatches."""

from agent.pipelines.base import PipelinePlugin
from agent.pipelines.product.events import ProductInterest, ProductMismatch, ProductRecognized
from agent.pipelines.product.settings import ProductSettings

PLUGIN = PipelinePlugin(
    name="product",
    settings=ProductSettings,
    build="agent.pipelines.product.stage:build",
    event_types=(ProductRecognized, ProductInterest, ProductMismatch),
)
