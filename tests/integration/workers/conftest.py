from worker_fixtures import broker_url, target, worker

__all__ = ["broker_url", "target", "worker"]
