from worker_fixtures import target, worker_processes

__all__ = ["target", "worker_processes"]
