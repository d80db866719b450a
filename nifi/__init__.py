"""The NiFi prediction archive: the flow definition (flow.json), the conf the platform writes
(conf/), and the code that deploys the flow and checks what runs (deploy.py)."""
