"""The planners' web workbench (`plantlake app`): quarantine review, twin state, work orders and
pipeline health, rendered on the server; its decisions go to tables it alone writes."""
