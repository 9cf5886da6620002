"""The data-quality rules (YAML), shipped as package data: `plantlake.pipelines.transforms.expectations`
reads them from here."""
