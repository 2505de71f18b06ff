"""Metrics for Prometheus: the web's requests at /metrics, the workers' messages on their own port.

Both answer only a request carrying `Authorization: Bearer <METRICS_TOKEN>`; without the setting
they are off. prometheus_client is imported only once a process has chosen where its multiprocess
files go (it decides at import), so no module here imports it at the top.
"""
