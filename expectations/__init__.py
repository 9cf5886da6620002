"""The data-quality rules (YAML), shipped as package data: `plantlake.pipelines.expectations`
reads them from here."""
