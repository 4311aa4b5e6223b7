from worker_fixtures import broker_url, target, worker_processes

__all__ = ["broker_url", "target", "worker_processes"]
